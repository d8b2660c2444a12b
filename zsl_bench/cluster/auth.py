"""Ray token authentication: the token file and the environment every Ray process and client needs."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

from zsl_bench.errors import UserError

# Variables that would override or redirect the token we hand out (RAY_AUTH_TOKEN wins over a token file).
_SHADOWING = ("RAY_AUTH_TOKEN", "RAY_ADDRESS")


def create_token(path: Path, *, replace: bool = False) -> Path:
    """Write a fresh random token to ``path`` (mode 0600, created with O_EXCL: never through a planted file).

    ``replace=True`` first removes a token left by an earlier run at the same path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    if replace:
        path.unlink(missing_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UserError(f"token file {path} already exists; remove it or use another cluster directory") from None
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32) + "\n")
    return path


def check_token_file(path: Path) -> None:
    """Refuse a token file others could know or change: not a regular file of this user with mode 0600 (or
    stricter). A token planted in a shared results or cluster folder would let its author join our Ray cluster."""
    path = Path(path)
    try:
        info = os.lstat(path)
    except OSError as exc:
        raise UserError(f"cannot read the Ray token file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise UserError(f"the Ray token file {path} is not a regular file (a link?); delete it and run again")
    if info.st_uid != os.getuid():
        raise UserError(
            f"the Ray token file {path} belongs to another user (uid {info.st_uid}); delete it and run again"
        )
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise UserError(
            f"the Ray token file {path} is open to other users (mode {mode:04o}): "
            f"run `chmod 600 {path}` if you made it, else delete it"
        )


def read_token(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace removed), after :func:`check_token_file`."""
    check_token_file(path)
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise UserError(f"cannot read the Ray token file {path}: {exc.strerror}") from None
    if not token:
        raise UserError(f"the Ray token file {path} is empty; restart the cluster to make a new one")
    return token


def token_env(path: Path, base: dict[str, str] | None = None) -> dict[str, str]:
    """``base`` (default: this process's environment) with token auth on through ``path``."""
    env = {k: v for k, v in (os.environ if base is None else base).items() if k not in _SHADOWING}
    env["RAY_AUTH_MODE"] = "token"
    env["RAY_AUTH_TOKEN_PATH"] = str(path)
    env.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    return env
