"""Read the Together recordings the plan replays, to assert exact content in replay mode.

Each test names the upstream body it expects relaystack to send (the body llama-stack recorded);
``Recordings.response`` finds the recording with that endpoint and body. A lookup miss is a bug
in the test's expectation, never a reason to invent data: it fails naming what was looked for.
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
    return json.dumps(body, sort_keys=True, separators=(",", ":"))


class Recordings:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._index: dict[tuple[str, str], tuple[Path, Any]] | None = None

    def _load(self) -> dict[tuple[str, str], tuple[Path, Any]]:
        if self._index is None:
            self._index = {}
            for path in sorted((self.directory / "responses").glob("*.json")):
                data = json.loads(path.read_text())
                request = data.get("request") or {}
                key = (request.get("endpoint", ""), _canonical(request.get("body")))
                self._index[key] = (path, data.get("response") or {})
        return self._index

    def response(self, endpoint: str, body: dict[str, Any]) -> Any:
        """The recorded response body (a dict, or a list of chunks for a stream), unwrapped."""
        found = self._load().get((endpoint, _canonical(body)))
        if found is None:
            raise AssertionError(f"no recording in {self.directory} for {endpoint} {_canonical(body)}")
        return unwrap(found[1].get("body"))

    def chat_text(self, body: dict[str, Any]) -> str:
        recorded = self.response("/v1/chat/completions", body)
        if isinstance(recorded, list):
            return "".join((c["choices"][0]["delta"].get("content") or "") for c in recorded if c["choices"])
        return str(recorded["choices"][0]["message"]["content"])

    def completion_text(self, body: dict[str, Any]) -> str:
        recorded = self.response("/v1/completions", body)
        chunks = recorded if isinstance(recorded, list) else [recorded]
        return "".join(c["choices"][0]["text"] or "" for c in chunks)

    def embeddings(self, body: dict[str, Any]) -> list[list[float]]:
        recorded = self.response("/v1/embeddings", body)
        return [item["embedding"] for item in recorded["data"]]
