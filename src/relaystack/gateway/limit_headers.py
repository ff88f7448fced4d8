"""OpenAI's ``x-ratelimit-*`` headers of an admitted request, rendered only when its answer starts.

The same six headers come in two forms:

- ``pairs``: (name, value) for any ASGI server (and for streams, front-ends, errors);
- ``lines``: ``name: value\\r\\n`` each, joined in one bytes, for relaystack's own server, which
  writes them as they are (``api.asgi.HEAD_WRITER``). A server must check an arbitrary header
  before writing it (uvicorn: two regular expressions and a lower-casing, ~0.55 µs a header
  here); these names are constants and their values digits and a unit, so there is nothing to
  check, and the lines are one formatting of templates made once per window.

A tightest window is ``(window, used, seconds until its oldest counted bucket leaves)``, as
the counters reported it at admission.
"""

from __future__ import annotations

import math
from math import ceil

from relaystack.gateway.counters import Reported, Window

__all__ = ["duration", "header_lines", "header_pairs"]

_NAMES = {
    kind: tuple(f"x-ratelimit-{what}-{kind}".encode() for what in ("limit", "remaining", "reset"))
    for kind in ("requests", "tokens")
}
_LIMIT_REQUESTS, _REMAINING_REQUESTS, _RESET_REQUESTS = _NAMES["requests"]
_LIMIT_TOKENS, _REMAINING_TOKENS, _RESET_TOKENS = _NAMES["tokens"]
# "1s" .. "59s", "1m0s": a per-minute window resets within its minute; formatted once, not once a request
_WHOLE_SECONDS = (*(b"%ds" % s for s in range(60)), b"1m0s")


def header_pairs(requests: Reported | None, tokens: Reported | None) -> list[tuple[bytes, bytes]]:
    """The headers from the tightest requests and tokens windows, as (name, value)."""
    headers: list[tuple[bytes, bytes]] = []
    if requests is not None:
        window, used, reset_s = requests
        headers += ((_LIMIT_REQUESTS, window.limit_bytes), (_REMAINING_REQUESTS, _left(window, used)),
                    (_RESET_REQUESTS, reset(reset_s)))
    if tokens is not None:
        window, used, reset_s = tokens
        headers += ((_LIMIT_TOKENS, window.limit_bytes), (_REMAINING_TOKENS, _left(window, used)),
                    (_RESET_TOKENS, reset(reset_s)))
    return headers


def header_lines(requests: Reported | None, tokens: Reported | None) -> bytes:
    """The same headers as ``header_pairs``, as the lines of a response head."""
    if requests is not None and tokens is not None:  # a key with rpm and tpm: one formatting
        r_window, r_used, r_reset = requests
        t_window, t_used, t_reset = tokens
        r_left = r_window.limit - r_used
        t_left = t_window.limit - t_used
        # a window in use resets within its minute: the table, without a call (``reset``)
        return b"%b%d%b%b\r\n%b%d%b%b\r\n" % (
            r_window.lines_head, r_left if r_left > 0 else 0, r_window.lines_reset,
            _WHOLE_SECONDS[ceil(r_reset)] if 1 <= r_reset <= 60 else reset(r_reset),
            t_window.lines_head, t_left if t_left > 0 else 0, t_window.lines_reset,
            _WHOLE_SECONDS[ceil(t_reset)] if 1 <= t_reset <= 60 else reset(t_reset))
    lines = b""
    for reported in (requests, tokens):
        if reported is not None:
            window, used, reset_s = reported
            lines += b"%b%d%b%b\r\n" % (window.lines_head, max(window.limit - used, 0), window.lines_reset,
                                        reset(reset_s))
    return lines


def _left(window: Window, used: int) -> bytes:
    left = window.limit - used
    return b"%d" % left if left > 0 else b"0"


def reset(seconds: float) -> bytes:
    """``duration`` as bytes; the common cases (a window in use: under a minute) without divisions."""
    if seconds < 1:
        return b"%dms" % round(seconds * 1000) if seconds > 0 else b"0ms"
    if seconds <= 60:
        return _WHOLE_SECONDS[math.ceil(seconds)]
    return duration(seconds).encode()


def duration(seconds: float) -> str:
    """OpenAI's format: ``1s``, ``6m0s``, ``20ms``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))}ms"
    whole = math.ceil(seconds)
    minutes, secs = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    return f"{minutes}m{secs}s" if minutes else f"{secs}s"
