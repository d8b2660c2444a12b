"""Clusters for sweeps: a local Ray head with its dashboard (``head``), SLURM batch jobs (``slurm``).

Both run Ray with token authentication: a private token file (mode 0600), ``RAY_AUTH_MODE=token`` and
``RAY_AUTH_TOKEN_PATH`` for every Ray process and client. The Ray processes are started with
``python -m ray.scripts.scripts start``, found and stopped by PID (``procs``, psutil), and watched through the
dashboard (``dashboard``: Ray's state API, imported only there and only when used).
"""
