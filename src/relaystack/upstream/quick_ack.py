"""Quick ACKs on an upstream connection: an upstream's answer is not held up by our delayed ACK."""

from __future__ import annotations

import functools
import socket
from collections.abc import Callable
from typing import Any

__all__ = ["quick_ack_switch"]


def quick_ack_switch(sock: Any) -> Callable[[], None] | None:
    """What turns the kernel's quick ACKs back on for a connection (Linux; None elsewhere).

    A keep-alive connection that sends a request soon after each answer looks interactive to
    Linux, which then delays its ACKs (40 ms at least) even after the answer's data is read. An
    upstream that holds a small last segment until its previous small one is ACKed (Nagle's rule;
    nginx serving a file with ``tcp_nopush`` does, and so does any server without TCP_NODELAY)
    then waits those 40 ms mid-answer: seen as ~1-2 % of 100 KB streams taking 40 ms more at
    c=16 (bench/README.md, "The 40 ms stream tail"). Set after each request is written, the
    answer's data is ACKed as soon as it is read. One setsockopt a request."""
    option = getattr(socket, "TCP_QUICKACK", None)
    setsockopt = getattr(sock, "setsockopt", None)
    if option is None or setsockopt is None:
        return None
    try:
        setsockopt(socket.IPPROTO_TCP, option, 1)
    except OSError:
        return None
    return functools.partial(_set_quietly, setsockopt, socket.IPPROTO_TCP, option, 1)


def _set_quietly(setsockopt: Callable[[int, int, int], None], level: int, option: int, value: int) -> None:
    try:
        setsockopt(level, option, value)
    except OSError:
        pass  # the connection is closing: its read will say so
