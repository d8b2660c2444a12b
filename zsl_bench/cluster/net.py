"""Ports and addresses: free-port picking, loopback checks, ``HOST:PORT`` parsing."""

from __future__ import annotations

import contextlib
import ipaddress
import socket

from zsl_bench.errors import UserError


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


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback IPs (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_address(text: str, what: str = "--address") -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); anything else is a ``UserError`` naming ``what``."""
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{what} {text!r}: expected HOST:PORT, e.g. 10.0.0.5:6379 (printed by `zsl-bench cluster up`)")
    return host, int(port)


def check_port(value: int, what: str) -> int:
    """A TCP port number from the command line, or a ``UserError``."""
    if not 0 < value < 65536:
        raise UserError(f"{what} {value}: a TCP port is 1..65535")
    return value
