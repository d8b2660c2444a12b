"""Resumable HTTP downloads of ``zsl-bench data fetch`` and the progress bar drawn on a terminal.

Callers: :mod:`zsl_bench.data.fetch` (:func:`download`) and the ``data fetch`` command of :mod:`zsl_bench.cli`
(:func:`terminal_progress`).
"""

from __future__ import annotations

import http.client
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from zsl_bench.atomic import move_into_place
from zsl_bench.data.xlsa17 import one_line
from zsl_bench.errors import UserError

_CHUNK = 1 << 20

Progress = Callable[[str, int, "int | None"], None]  # (file name, bytes done, total bytes or None)


def _open(url: str, offset: int, timeout: float) -> http.client.HTTPResponse | None:
    """GET ``url`` from byte ``offset``; None when the server says the range is past the end (HTTP 416)."""
    headers = {"User-Agent": "zsl-bench-fetch/1"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            return None
        raise UserError(
            f"download of {url} failed: HTTP {exc.code} {one_line(exc.reason)}; check the URL or use --mirror"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(
            f"cannot reach {url} ({one_line(reason)}); check the network or use --mirror (a partial download resumes)"
        ) from None


def download(
    url: str, dest: Path, *, size: int | None = None, progress: Progress | None = None, timeout: float = 60.0
) -> None:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming an existing ``.part`` with HTTP Range.

    Raises:
        UserError: network or HTTP failure, or an interrupted transfer (the ``.part`` is kept for resuming).
    """
    part = dest.with_name(dest.name + ".part")
    part.parent.mkdir(parents=True, exist_ok=True)
    have = part.stat().st_size if part.is_file() else 0
    if size is not None and have > size:  # not a prefix of the file: start again
        part.unlink()
        have = 0
    resp = None if size is not None and have == size else _open(url, have, timeout)
    if resp is not None:  # None: the .part is complete (known size, or HTTP 416)
        with resp:
            _receive(resp, part, url=url, have=have, progress=progress)
    move_into_place(part, dest)


def _receive(resp: http.client.HTTPResponse, part: Path, *, url: str, have: int, progress: Progress | None) -> None:
    """Append the body of ``resp`` (from ``url``) to ``part``, which holds ``have`` bytes, or rewrite ``part`` when
    the server ignored the range; ``progress`` sees the downloaded file's name and the byte counts."""
    name = part.name.removesuffix(".part")
    total = _response_total(resp, have)
    mode = "ab"
    if have and resp.status != 206:  # the server ignored Range: start again
        have, mode = 0, "wb"
        total = _response_total(resp, 0)
    done = have
    try:
        with open(part, mode) as fh:
            while block := resp.read(_CHUNK):
                fh.write(block)
                done += len(block)
                if progress is not None:
                    progress(name, done, total)
    except (http.client.IncompleteRead, OSError) as exc:
        raise UserError(
            f"download of {url} was interrupted after {done} bytes ({type(exc).__name__}); "
            "run the same command again to resume"
        ) from None
    if total is not None and done != total:
        raise UserError(f"download of {url} stopped at {done} of {total} bytes; run the same command again to resume")


def _response_total(resp: http.client.HTTPResponse, offset: int) -> int | None:
    if resp.status == 206:
        match = re.match(r"bytes (\d+)-\d+/(\d+)", resp.headers.get("Content-Range", ""))
        if match is None or int(match.group(1)) != offset:
            raise UserError(f"{resp.url}: the server answered the range request with a different range; retry")
        return int(match.group(2))
    length = resp.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


def terminal_progress(stream: TextIO = sys.stderr) -> Progress:
    """A progress bar on ``stream`` (call it only when the stream is a terminal)."""
    state = {"last": 0.0, "start": time.monotonic(), "name": ""}

    def show(name: str, done: int, total: int | None) -> None:
        now = time.monotonic()
        if name != state["name"]:
            state.update(name=name, start=now, last=0.0)
        finished = total is not None and done >= total
        if now - float(state["last"]) < 0.2 and not finished:
            return
        state["last"] = now
        rate = done / max(now - float(state["start"]), 1e-6) / 2**20
        if total:
            filled = int(30 * done / total)
            bar = "#" * filled + "-" * (30 - filled)
            text = f"\r{name} [{bar}] {100 * done / total:5.1f}% {done / 2**20:,.1f}/{total / 2**20:,.1f} MiB"
        else:
            text = f"\r{name} {done / 2**20:,.1f} MiB"
        stream.write(f"{text} {rate:,.1f} MiB/s ")
        if finished:
            stream.write("\n")
        stream.flush()

    return show
