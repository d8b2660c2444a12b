"""Free TCP ports on this host: the one place zsl-bench asks the kernel for a port.

Used by the engine (the loopback rendezvous of a one-worker process group, the torchrun master port of
:mod:`zsl_bench.engine.launch`), the cluster commands (Ray head ports, ``zsl-bench cluster job-ports``) and the
tests that start services. Depends on nothing else in zsl-bench, so every layer may import it.
"""

from __future__ import annotations

import contextlib
import socket


def free_ports(count: int, host: str = "") -> list[int]:
    """``count`` distinct TCP ports that are free right now on ``host`` (all interfaces by default)."""
    with contextlib.ExitStack() as stack:
        socks = [stack.enter_context(socket.socket()) for _ in range(count)]
        for sock in socks:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in socks]


def port_free(port: int, host: str = "") -> bool:
    """True when a server could bind ``host:port`` now (same SO_REUSEADDR semantics as a server)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True
