"""zsl-proto: an example zsl-bench plugin — an attribute-prototype model, a dataset and a searcher.

Nothing here is imported by zsl-bench itself: the entry points in ``pyproject.toml`` tell zsl-bench where each
extension lives, and it imports them the first time it looks a name up (in the sweep driver, every Ray worker and
every SLURM job alike).
"""

__version__ = "0.1.0"
