"""Sweeps: search-space files (``space.py``) and the Ray Tune + Optuna backend (``tune_backend.py``)."""
