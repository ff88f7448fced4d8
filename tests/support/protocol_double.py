"""A ``GuardedHttpToolsProtocol`` with a recording transport and a cycle in a given state, for the
tests of the server's own writers (``write_head``, ``write_stream``) without a socket."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from relaystack.server.protocol import GuardedHttpToolsProtocol


class RecordingTransport:
    """What was written: ``written`` (each ``write``), ``writes`` (each ``writelines``' parts)."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.writes: list[list[bytes]] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, parts: list[bytes]) -> None:
        self.writes.append(list(parts))

    def close(self) -> None:
        self.closed = True


class Cycle(SimpleNamespace):
    async def send(self, message: Any) -> None:  # the send a handler gets: bound to its cycle
        raise AssertionError("not called")


def protocol_with_cycle(**cycle: Any) -> tuple[GuardedHttpToolsProtocol, Any]:
    """A protocol (only its writers are used) whose cycle is a fresh response, keep-alive, nothing
    written yet; ``cycle`` overrides any of that state."""
    protocol = GuardedHttpToolsProtocol.__new__(GuardedHttpToolsProtocol)
    state: dict[str, Any] = {
        "scope": {"method": "POST"}, "response_started": False, "response_complete": False, "disconnected": False,
        "access_log": False, "flow": SimpleNamespace(write_paused=False),
        "default_headers": [(b"server", b"relaystack")], "chunked_encoding": None, "expected_content_length": 0,
        "keep_alive": True, "waiting_for_100_continue": False, "transport": RecordingTransport(),
        "message_event": asyncio.Event(), **cycle,
    }
    protocol.cycle = Cycle(**state)  # type: ignore[assignment]
    return protocol, protocol.cycle
