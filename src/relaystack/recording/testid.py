"""Which test made a request: llama-stack's ``__test_id``, carried from the client to the recorder.

llama-stack's test harness (v0.3 onward) puts the pytest node id of the running test into the
provider-data header, ``X-LlamaStack-Provider-Data: {"__test_id": "tests/.../test_x.py::test_y"}``
(``X-OGX-Provider-Data`` after the rename). The recorder names, files and matches recordings
by it (identity.py, store.py), so two tests sending the same request get their own answers.

The composition root binds it per HTTP request with ``bound_test_id(scope)`` when recording
or replaying; the value lives in a context variable for that request's task (streams and the
recording written at their end included) and is read with ``current_test_id()``. The field is
removed from the header on the way in: it is the harness's, never a provider's, so no layer
below ever sees it in provider data, let alone sends it upstream. With no ``__test_id`` the
request is matched by content, as before.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator, MutableMapping
from contextvars import ContextVar
from typing import Any

__all__ = ["PROVIDER_DATA_HEADERS", "TEST_ID_FIELD", "bound_test_id", "current_test_id", "parse_test_id"]

log = logging.getLogger("relaystack.recording")

TEST_ID_FIELD = "__test_id"
PROVIDER_DATA_HEADERS = (b"x-llamastack-provider-data", b"x-ogx-provider-data")
# a pytest node id is a path and a name; anything longer is not one
_MAX_TEST_ID = 2048

_current: ContextVar[str | None] = ContextVar("relaystack_test_id", default=None)


def current_test_id() -> str | None:
    """The test id of the request being served, or None."""
    return _current.get()


def parse_test_id(provider_data: Any) -> str | None:
    """``__test_id`` of a parsed provider-data object, if it is a plausible one."""
    if not isinstance(provider_data, dict):
        return None
    value = provider_data.get(TEST_ID_FIELD)
    if isinstance(value, str) and 0 < len(value) <= _MAX_TEST_ID and "\x00" not in value:
        return value
    return None


@contextlib.contextmanager
def bound_test_id(scope: MutableMapping[str, Any]) -> Iterator[str | None]:
    """Take ``__test_id`` out of the request's provider-data header and make it the current
    test id until the block ends. The header keeps every other field (or goes, if it held
    nothing else)."""
    found: str | None = None
    headers = scope.get("headers") or []
    rewritten: list[tuple[bytes, bytes]] = []
    changed = False
    for name, value in headers:
        if name.lower() in PROVIDER_DATA_HEADERS and b'"' + TEST_ID_FIELD.encode() + b'"' in value:
            data = _parse(value)
            if isinstance(data, dict) and TEST_ID_FIELD in data:
                found = found or parse_test_id(data)
                del data[TEST_ID_FIELD]
                changed = True
                if data:
                    rewritten.append((name, json.dumps(data).encode()))
                continue
        rewritten.append((name, value))
    if changed:
        scope["headers"] = rewritten
    token = _current.set(found)
    try:
        yield found
    finally:
        _current.reset(token)


def _parse(value: bytes) -> Any:
    try:
        return json.loads(value)
    except ValueError:
        return None  # left as it is: the API layer answers a malformed header with a 400
