"""Read the v0.7.1 recordings the plan replays, to assert exact recorded content in replay mode.

A recording is found by its test id, endpoint and (when a test makes several calls) request
body; a miss is a bug in the test's expectation, never a reason to invent data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["Recordings", "unwrap"]


def unwrap(value: Any) -> Any:
    """llama-stack stores SDK objects as ``{"__type__": ..., "__data__": {...}}``; return the data."""
    if isinstance(value, dict) and "__data__" in value:
        return value["__data__"]
    if isinstance(value, list):
        return [unwrap(v) for v in value]
    return value


def _canonical(body: Any) -> str:
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if not (k == "extra_body" and v == {})}
    return json.dumps(body, sort_keys=True)


class Recordings:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._docs: list[dict[str, Any]] | None = None

    def _all(self) -> list[dict[str, Any]]:
        if self._docs is None:
            self._docs = [json.loads(p.read_text()) for p in sorted(self.directory.rglob("recordings/*.json"))]
        return self._docs

    def response(self, test_id: str, endpoint: str, body: dict[str, Any]) -> Any:
        """The recorded answer (unwrapped; a list of chunks for a stream) to this test's call: the
        recording of exactly this body first (what relaystack replays too), else one that differs
        only by an empty ``extra_body`` (an SDK argument that never reached the wire)."""
        want = _canonical(body)
        candidates = [d for d in self._all() if d.get("test_id") == test_id and d["request"]["endpoint"] == endpoint]
        exact = json.dumps(body, sort_keys=True)
        for doc in sorted(candidates, key=lambda d: json.dumps(d["request"]["body"], sort_keys=True) != exact):
            if _canonical(doc["request"]["body"]) == want:
                return unwrap(doc["response"]["body"])
        raise AssertionError(f"no recording in {self.directory} for {test_id} {endpoint} {want[:200]}")

    def chat_text(self, test_id: str, body: dict[str, Any]) -> str:
        recorded = self.response(test_id, "/v1/chat/completions", body)
        if isinstance(recorded, list):
            return "".join((c["choices"][0]["delta"].get("content") or "") for c in recorded if c["choices"])
        return str(recorded["choices"][0]["message"]["content"])

    def completion_text(self, test_id: str, body: dict[str, Any]) -> str:
        recorded = self.response(test_id, "/v1/completions", body)
        chunks = recorded if isinstance(recorded, list) else [recorded]
        return "".join(c["choices"][0]["text"] or "" for c in chunks)
