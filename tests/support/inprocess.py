"""The real app, driven in-process (httpx.ASGITransport) against an in-process fake Together.

For tests that need thousands of requests (property-based tests): no sockets, no
subprocess. The fake answers through the upstream seam with the same bodies as
``fakes.fake_together`` (quirks included); a body the fake cannot make sense of is a 400,
as a real upstream would answer.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx

from fakes.together_bodies import (
    TogetherError,
    chat_events,
    chat_response,
    completion_events,
    completion_response,
    embeddings_response,
)
from fakes.together_data import MODELS
from relaystack.api.app import RelaystackApp, create_app
from relaystack.config import parse_config
from relaystack.providers.openai_compat import OpenAICompatProvider
from relaystack.upstream.base import UpstreamRequest

__all__ = ["FakeTogetherUpstream", "PiecesResponse", "in_process_app"]


@dataclass(slots=True)
class PiecesResponse:
    status: int
    pieces: list[bytes]
    headers: Mapping[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})

    async def read(self) -> bytes:
        return b"".join(self.pieces)

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece

    async def aclose(self) -> None:
        return None


def _json(status: int, data: Any) -> PiecesResponse:
    return PiecesResponse(status, [json.dumps(data).encode()])


class FakeTogetherUpstream:
    """An ``Upstream`` answering like Together, in process."""

    def __init__(self) -> None:
        self.requests: list[UpstreamRequest] = []

    async def send(self, request: UpstreamRequest) -> PiecesResponse:
        self.requests.append(request)
        path = urlsplit(request.url).path
        if path.endswith("/models"):
            return _json(200, MODELS)
        body = request.json
        try:
            if path.endswith("/chat/completions"):
                return self._answer(body, chat_response, chat_events)
            if path.endswith("/completions"):
                return self._answer(body, completion_response, completion_events)
            if path.endswith("/embeddings"):
                return _json(200, embeddings_response(body))
        except TogetherError as exc:
            return _json(exc.status, exc.body())
        except Exception as exc:  # the fake cannot read this body: a real upstream would say 400
            return _json(400, {"error": {"message": f"bad request ({type(exc).__name__})",
                                         "type": "invalid_request_error", "param": None, "code": None}})
        return _json(404, {"error": {"message": "no such route", "type": "not_found", "param": None, "code": None}})

    @staticmethod
    def _answer(body: dict[str, Any], respond: Any, events: Any) -> PiecesResponse:
        if body.get("stream"):
            pieces = [b"data: " + json.dumps(e).encode() + b"\n\n" for e in events(body)]
            return PiecesResponse(200, [*pieces, b"data: [DONE]\n\n"], {"Content-Type": "text/event-stream"})
        return _json(200, respond(body))

    async def aclose(self) -> None:
        return None


def _config(models: list[dict[str, Any]]) -> dict[str, Any]:
    base = {"api_key": "fake-key-123456", "base_url": "http://fake.invalid/v1"}
    return {
        "version": 2,
        "providers": {"inference": [
            {"provider_id": "together", "provider_type": "remote::together", "config": dict(base)},
            {"provider_id": "compat", "provider_type": "remote::openai-compat", "config": dict(base)},
        ]},
        "models": models,
        "storage": {"db_path": ":memory:"},
        "server": {"access_log": False},
    }


@contextlib.asynccontextmanager
async def in_process_app(models: list[dict[str, Any]]) -> AsyncIterator[tuple[RelaystackApp, httpx.AsyncClient]]:
    """A started app whose remote providers all talk to one ``FakeTogetherUpstream``."""
    app = create_app(parse_config(_config(models), source="<in-process>"), environ={})
    fake = FakeTogetherUpstream()
    for provider in app.providers:
        if isinstance(provider, OpenAICompatProvider):
            provider.upstream = fake
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relaystack.test") as client:
            yield app, client
    finally:
        await app.shutdown()
