"""Fixtures of the record/replay tests: the shared recordings, a fake upstream, helpers."""

from __future__ import annotations

import importlib
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from relaystack.upstream.base import UpstreamRequest
from relaystack.upstream.http_client import HttpUpstream

from .fake_upstream import UpstreamState, start

SHARED = Path(__file__).resolve().parents[1] / "recordings" / "together"
SHARED_FILES = sorted((SHARED / "responses").glob("*.json"))
SEED_ID = "6730dcde0b73"
TOGETHER = "https://api.together.xyz/v1"


@pytest.fixture
def shared_copy(tmp_path: Path) -> Path:
    """A writable copy of the 15 shared recordings (``<tmp>/rec/responses/*.json``)."""
    target = tmp_path / "rec"
    shutil.copytree(SHARED, target)
    return target


@pytest.fixture
async def fake_upstream() -> AsyncIterator[tuple[UpstreamState, str]]:
    state = UpstreamState()
    runner, base_url = await start(state)
    try:
        yield state, base_url
    finally:
        await runner.cleanup()


@pytest.fixture
async def live() -> AsyncIterator[HttpUpstream]:
    upstream = HttpUpstream()
    try:
        yield upstream
    finally:
        await upstream.aclose()


def post(base_url: str, path: str, body: dict[str, Any], headers: dict[str, str] | None = None,
         fault: str | None = None) -> UpstreamRequest:
    """An UpstreamRequest the way the providers build one."""
    raw = json.dumps(body).encode()
    all_headers = {"Content-Type": "application/json", **(headers or {})}
    return UpstreamRequest("POST", base_url + path, all_headers, raw, body, stream=bool(body.get("stream")),
                           fault=fault)


def get(base_url: str, path: str, headers: dict[str, str] | None = None) -> UpstreamRequest:
    return UpstreamRequest("GET", base_url + path, dict(headers or {}))


def request_of(path: Path, base_url: str = TOGETHER) -> UpstreamRequest:
    """The wire request our Together provider sends for a shared recording's call."""
    rec = json.loads(path.read_text())["request"]
    body = {k: v for k, v in rec["body"].items() if k != "extra_body"}
    op = rec["endpoint"].removeprefix("/v1")
    return post(base_url, op, body)


async def sse_payloads(response: Any) -> list[bytes]:
    """The ``data:`` payloads of a streamed response, in order ([DONE] included)."""
    raw = b"".join([c async for c in response.iter_chunks()])
    assert raw.endswith(b"\n\n")
    return [event.removeprefix(b"data: ") for event in raw[:-2].split(b"\n\n")]


def llama_deserialize(obj: Any) -> Any:
    """llama-stack's reader: import the class named by __type__ and model_validate __data__,
    falling back to the raw data when validation fails (as its recorder does)."""
    if isinstance(obj, dict) and "__type__" in obj and "__data__" in obj:
        module_path, class_name = obj["__type__"].rsplit(".", 1)
        cls = getattr(importlib.import_module(module_path), class_name)
        try:
            return cls.model_validate(obj["__data__"])
        except (TypeError, ValueError):
            return obj["__data__"]
    return obj
