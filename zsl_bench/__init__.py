"""zsl-bench: train, sweep and rank zero-shot image classifiers."""

__version__ = "0.1.0"
