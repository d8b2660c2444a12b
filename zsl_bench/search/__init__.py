"""Sweeps: search-space files (``space.py``) and the Ray Tune + Optuna backend: ``tune_backend.py`` (the driver,
``run_sweep``) over ``tune_stages.py`` (its Tune experiments), ``resume.py``, ``crashes.py`` and ``ray_adapter.py``."""
