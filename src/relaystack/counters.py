"""The process's own counters: the one place that counts what went wrong quietly.

``/v1/health`` shows ``COUNTERS.snapshot()`` under ``"counters"``; a metrics exporter reads the
same object. One per process (each ``--workers`` process counts its own requests).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

__all__ = ["COUNTERS", "Counters"]


@dataclass(slots=True)
class Counters:
    # chat completions answered (JSON or streamed) that could not be stored; each also logs
    # an error line naming the completion id
    store_failures: int = 0
    # streams that ended with an error event because the upstream sent a malformed event
    malformed_streams: int = 0

    def snapshot(self) -> dict[str, int]:
        return dataclasses.asdict(self)


COUNTERS = Counters()
