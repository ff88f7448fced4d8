"""Which recording came nearest to a request that missed, and how they differ.

A replay miss is almost always "the test changed one field". Saying which recording was
closest and which top-level fields (or which message) differ turns a mystery into a
one-line fix. Values are shortened so a log line stays a line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from relaystack.recording.codec import Recording
from relaystack.recording.identity import Identity, canonical_body, normalize_path

__all__ = ["describe_differences", "nearest_recording"]

_MAX_VALUE = 60
_MAX_DIFFS = 6
_MISSING = object()


def nearest_recording(identity: Identity, recordings: Iterable[Recording]) -> tuple[Recording, list[str]] | None:
    """The closest recording of the same endpoint and its differences; None when the endpoint has none.

    Recordings of other endpoints are never "near": comparing a model listing with an
    embedding call only produces noise.
    """
    best: tuple[tuple[int, int], Recording, list[str]] | None = None
    want_path = normalize_path(identity.path)
    for rec in recordings:
        if normalize_path(rec.identity.path) != want_path or rec.identity.method != identity.method:
            continue
        diffs = describe_differences(identity, rec.identity)
        score = (0 if rec.identity.model == identity.model else 1, len(diffs))
        if best is None or score < best[0]:
            best = (score, rec, diffs)
    return (best[1], best[2]) if best else None


def describe_differences(request: Identity, recorded: Identity) -> list[str]:
    """Human-readable differences, request first: ``temperature: 0.2 (request) vs 0.7 (recording)``."""
    diffs: list[str] = []
    if request.method != recorded.method:
        diffs.append(f"method: {request.method} vs {recorded.method}")
    if normalize_path(request.path) != normalize_path(recorded.path):
        diffs.append(f"path: {normalize_path(request.path)} vs {normalize_path(recorded.path)}")
    if request.query != recorded.query:
        diffs.append(f"query: {_short(request.query)} (request) vs {_short(recorded.query)} (recording)")
    if request.test_id is not None and request.test_id != recorded.test_id:
        diffs.append(f"test_id: {_short(request.test_id)} (request) vs {_short(recorded.test_id)} (recording)")
    mine, theirs = canonical_body(request.body), canonical_body(recorded.body)
    if isinstance(mine, dict) and isinstance(theirs, dict):
        for key in sorted(set(mine) | set(theirs)):
            a, b = mine.get(key, _MISSING), theirs.get(key, _MISSING)
            if a != b:
                diffs.append(_field_diff(key, a, b))
    elif mine != theirs:
        diffs.append(f"body: {_short(mine)} vs {_short(theirs)}")
    if len(diffs) > _MAX_DIFFS:
        diffs = [*diffs[:_MAX_DIFFS], f"... and {len(diffs) - _MAX_DIFFS} more"]
    return diffs


def _field_diff(key: str, a: Any, b: Any) -> str:
    if a is _MISSING:
        return f"{key}: absent in request, recording has {_short(b)}"
    if b is _MISSING:
        return f"{key}: request has {_short(a)}, absent in recording"
    if isinstance(a, list) and isinstance(b, list):
        return _list_diff(key, a, b)
    return f"{key}: {_short(a)} (request) vs {_short(b)} (recording)"


def _list_diff(key: str, a: list[Any], b: list[Any]) -> str:
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            if isinstance(x, dict) and isinstance(y, dict):
                inner = [k for k in sorted(set(x) | set(y)) if x.get(k, _MISSING) != y.get(k, _MISSING)]
                if len(inner) == 1:
                    k = inner[0]
                    return (
                        f"{key}[{i}].{k}: {_short(x.get(k, '<absent>'))} (request) "
                        f"vs {_short(y.get(k, '<absent>'))} (recording)"
                    )
            return f"{key}[{i}]: {_short(x)} (request) vs {_short(y)} (recording)"
    return f"{key}: {len(a)} items in request vs {len(b)} in recording"


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 3] + "..."
