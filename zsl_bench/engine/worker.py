"""One worker process of a ``ddp``/``deepspeed`` run: ``python -m zsl_bench.engine.worker CONFIG RUN_DIR``.

Started by torchrun (:mod:`zsl_bench.engine.launch` on this host, or by hand on a cluster:
``torchrun --nnodes M --nproc-per-node N ... -m zsl_bench.engine.worker CONFIG RUN_DIR``), which sets
``RANK``/``WORLD_SIZE``/``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT``. Every rank runs ``run_trial`` on the
same config; rank 0 writes ``RUN_DIR``. Exit codes: 0 done, 1 the trial failed, 2 a configuration problem
(one line on stderr), 130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    """Run this rank's part of the trial; the process group is closed (barrier, destroy) on success."""
    parser = argparse.ArgumentParser(prog="python -m zsl_bench.engine.worker", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="the resolved experiment config (YAML)")
    parser.add_argument("run_dir", help="the run directory (rank 0 writes it)")
    parser.add_argument("--fresh", action="store_true", help="start afresh instead of resuming RUN_DIR")
    args = parser.parse_args(argv)

    from zsl_bench.config import read_yaml, validate
    from zsl_bench.engine import run_trial
    from zsl_bench.engine.process_group import close_process_group
    from zsl_bench.errors import TrialFailed, UserError

    rank = os.environ.get("RANK", "0")
    try:
        cfg = validate(read_yaml(args.config, "worker config") or {}, args.config)
        run_trial(cfg, args.run_dir, resume=not args.fresh)
    except UserError as exc:
        print(f"zsl-bench: error: {exc}", file=sys.stderr)
        return 2
    except TrialFailed as exc:
        print(f"zsl-bench: worker {rank}: trial failed: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    close_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
