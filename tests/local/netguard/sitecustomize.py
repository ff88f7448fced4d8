"""Loaded by every Python process of the offline test (it is on their PYTHONPATH).

Any attempt to resolve or connect to something that is not loopback is written to
$NETGUARD_LOG and refused, so the test sees even attempts that the code under test would
have swallowed. (The test also runs everything in an empty network namespace when it can.)
"""

from __future__ import annotations

import errno
import os
import socket
from typing import Any

_LOG = os.environ.get("NETGUARD_LOG", "")
_LOCAL = ("127.", "::1", "localhost", "::ffff:127.")


def _refuse(what: str, target: Any) -> None:
    host = target[0] if isinstance(target, tuple) else target
    if host is None or (isinstance(host, bytes) and host.startswith(b"127.")):
        return
    if isinstance(host, str) and (host.startswith(_LOCAL) or host in ("", "0.0.0.0")):
        return
    if _LOG:
        with open(_LOG, "a", encoding="utf-8") as fh:
            fh.write(f"{os.getpid()} {what} {target!r}\n")
    raise OSError(errno.ENETUNREACH, f"network blocked by the relaystack offline test: {what} {target!r}")


_getaddrinfo = socket.getaddrinfo
_connect = socket.socket.connect
_connect_ex = socket.socket.connect_ex


def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
    _refuse("getaddrinfo", host)
    return _getaddrinfo(host, *args, **kwargs)


def connect(self: socket.socket, address: Any) -> None:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse("connect", address)
    return _connect(self, address)


def connect_ex(self: socket.socket, address: Any) -> int:
    if self.family in (socket.AF_INET, socket.AF_INET6):
        _refuse("connect_ex", address)
    return _connect_ex(self, address)


socket.getaddrinfo = getaddrinfo
socket.socket.connect = connect  # type: ignore[method-assign]
socket.socket.connect_ex = connect_ex  # type: ignore[method-assign]
