"""The leaderboard as a static site (``zsl-bench leaderboard --format html``): an index of sortable tables and one
page per row, plain HTML with inline CSS and a few lines of JS, PNG plots beside them; no server, no network."""

from zsl_bench.report.site.build import write_site
from zsl_bench.report.site.index_page import render_index

__all__ = ["render_index", "write_site"]
