"""Results: read run directories and aggregate them into leaderboard tables."""
