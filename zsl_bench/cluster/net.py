"""Addresses: loopback checks, ``HOST:PORT`` parsing, port-number checks (free ports: :mod:`zsl_bench.ports`)."""

from __future__ import annotations

import ipaddress

from zsl_bench.errors import UserError


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
