"""``python -m zsl_bench.cli``: the ``zsl-bench`` command (the SLURM batch script runs it so)."""

import sys

from zsl_bench.cli import main

sys.exit(main())
