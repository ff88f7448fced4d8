"""The embedded providers' plumbing without the real models (fast; no weights needed).

Text assembly around stop strings and UTF-8, the worker's states and failure paths, and
config validation. The tests that run the real models are in the other test_local_* files.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from relaystack.errors import (
    ConfigError,
    ModelNotFoundError,
    ModelTypeError,
    RelaystackError,
    ServiceUnavailableError,
)
from relaystack.local.assets import AssetError
from relaystack.local.llamacpp import _StopScanner
from relaystack.local.worker import ModelWorker
from relaystack.providers.base import CallContext, ModelEntry
from relaystack.providers.local import LlamaCppProvider, SentenceTransformersProvider

pytestmark = pytest.mark.local


def feed_all(scanner: _StopScanner, pieces: list[bytes]) -> tuple[list[str], bool]:
    out: list[str] = []
    for piece in pieces:
        delta, hit = scanner.feed(piece)
        if delta:
            out.append(delta)
        if hit:
            return out, True
    tail = scanner.flush()
    return [*out, tail] if tail else out, False


def test_multibyte_characters_split_across_tokens_are_never_emitted_half() -> None:
    text = "héllo 東京 😀"
    raw = text.encode()
    pieces = [raw[i : i + 1] for i in range(len(raw))]  # one byte per "token"
    out, hit = feed_all(_StopScanner([]), pieces)
    assert not hit
    assert "".join(out) == text
    assert all("\ufffd" not in part for part in out)


def test_stop_string_spanning_tokens_is_cut_and_never_leaked() -> None:
    out, hit = feed_all(_StopScanner(["lo w"]), [b"hel", b"lo", b" w", b"orld"])
    assert hit
    assert "".join(out) == "hel"


def test_a_possible_stop_prefix_is_held_back_then_released() -> None:
    scanner = _StopScanner(["xyz"])
    assert scanner.feed(b"abcx") == ("abc", False)  # "x" might start "xyz"
    assert scanner.feed(b"q") == ("xq", False)  # it did not
    assert scanner.flush() == ""


def test_earliest_of_several_stops_wins() -> None:
    out, hit = feed_all(_StopScanner(["END", "b"]), [b"a b c END"])
    assert hit and "".join(out) == "a "


class FakeEngine:
    def __init__(self) -> None:
        self.ran: list[str] = []

    def count(self, name: str, n: int, cancelled: Callable[[], bool]) -> Iterator[int]:
        self.ran.append(name)
        for i in range(n):
            if cancelled():
                return
            yield i


async def test_a_failed_load_is_reported_with_its_reason_and_fix() -> None:
    def load() -> FakeEngine:
        raise AssetError("weights missing: pip install --no-deps something==1.0")

    worker: ModelWorker[FakeEngine] = ModelWorker("local/x", load)
    assert worker.state == "not_loaded"
    with pytest.raises(ServiceUnavailableError) as info:
        await worker.call(lambda engine, cancelled: engine.ran)
    assert worker.state == "failed: weights missing: pip install --no-deps something==1.0"
    assert "could not be loaded" in info.value.message and "pip install --no-deps something==1.0" in info.value.message
    with pytest.raises(ServiceUnavailableError):  # and stays failed, answering at once
        await worker.call(lambda engine, cancelled: engine.ran)
    await worker.close()


async def test_requests_sent_while_loading_wait_for_the_load() -> None:
    gate = threading.Event()

    def load() -> FakeEngine:
        gate.wait(10)
        return FakeEngine()

    worker: ModelWorker[FakeEngine] = ModelWorker("local/x", load)
    worker.start()
    assert worker.state == "loading"
    pending = asyncio.ensure_future(worker.call(lambda engine, cancelled: list(engine.count("a", 3, cancelled))))
    await asyncio.sleep(0.01)
    assert not pending.done()  # waiting, not failing
    gate.set()
    assert await pending == [0, 1, 2]
    assert worker.state == "ready"
    await worker.close()


async def test_unexpected_engine_errors_become_a_500_without_details() -> None:
    worker: ModelWorker[FakeEngine] = ModelWorker("local/x", FakeEngine)

    def boom(engine: FakeEngine, cancelled: Callable[[], bool]) -> int:
        raise ValueError("secret internal detail")

    with pytest.raises(RelaystackError) as info:
        await worker.call(boom)
    assert info.value.status_code == 500
    assert "secret" not in info.value.message and "ValueError" in info.value.message
    # the worker survives and serves the next job
    assert await worker.call(lambda engine, cancelled: 7) == 7
    await worker.close()


async def test_close_fails_queued_jobs_instead_of_hanging_them() -> None:
    gate = threading.Event()
    worker: ModelWorker[FakeEngine] = ModelWorker("local/x", FakeEngine)

    def hold(engine: FakeEngine, cancelled: Callable[[], bool]) -> Iterator[int]:
        yield 1
        while not cancelled() and not gate.is_set():
            gate.wait(0.01)

    holder = worker.stream(hold)
    assert await anext(holder) == 1
    queued = asyncio.ensure_future(worker.call(lambda engine, cancelled: 2))
    await asyncio.sleep(0.01)
    await worker.close()  # cancels the running job, fails the queued one
    with pytest.raises(ServiceUnavailableError, match="shutting down"):
        await queued
    await holder.aclose()
    with pytest.raises(ServiceUnavailableError, match="shutting down"):
        await worker.call(lambda engine, cancelled: 3)


def test_provider_config_is_validated_at_start_up() -> None:
    with pytest.raises(ConfigError, match="unknown config key"):
        LlamaCppProvider("local", {"n_thread": 2})
    with pytest.raises(ConfigError, match="n_ctx"):
        LlamaCppProvider("local", {"n_ctx": 0})
    with pytest.raises(ConfigError, match="preload"):
        SentenceTransformersProvider("e", {"preload": "sometimes"})
    # values that arrive as strings from ${env...} substitution are fine
    provider = LlamaCppProvider("local", {"preload": "true", "n_ctx": "4096", "n_threads": "1"})
    assert provider.preload is True and provider.settings.n_ctx == 4096
    assert provider.static_models()[0].metadata == {"context_length": 4096}


async def test_a_bad_model_path_fails_the_model_not_the_server(tmp_path: Path) -> None:
    provider = LlamaCppProvider("local", {"model_path": str(tmp_path / "missing.gguf")})
    entry = provider.static_models()[0]
    with pytest.raises(ServiceUnavailableError) as info:
        await provider.chat_completion(
            {"messages": [{"role": "user", "content": "hi"}]},
            CallContext(model=entry, requested_model=entry.identifier),
        )
    assert info.value.status_code == 503
    assert provider.state.startswith("failed: ")
    health = await provider.health()
    assert health["status"] == "Error" and health["models"] == {entry.identifier: provider.state}
    await provider.stop()


async def test_registry_entries_that_do_not_fit_the_provider_are_rejected() -> None:
    provider = LlamaCppProvider("local", {})
    entry = provider.static_models()[0]
    wrong_type = ModelEntry(entry.identifier, "local", entry.provider_resource_id, model_type="embedding")
    with pytest.raises(ModelTypeError, match="registered as model_type 'embedding'"):
        await provider.chat_completion({"messages": []}, CallContext(model=wrong_type, requested_model="x"))
    other = ModelEntry("local/other", "local", "some-other-model", model_type="llm")
    with pytest.raises(ModelNotFoundError, match="serves only 'local/smollm2-135m-instruct'"):
        await provider.completion({"prompt": "hi"}, CallContext(model=other, requested_model="local/other"))
    assert provider.state == "not_loaded"  # rejected before anything was loaded
    await provider.stop()



class _ScriptedWorker:
    """Stands in for the model worker: the engine events of a two-token answer."""

    def stream(self, run: Any) -> Any:
        from relaystack.local.llamacpp import Finished, Started, TextDelta

        async def events() -> Any:
            for event in (Started(prompt_tokens=7), TextDelta("Hi"), Finished("stop", 3)):
                yield event

        return events()


@pytest.mark.parametrize("asked", [False, True])
async def test_a_local_stream_reports_its_usage_whether_or_not_the_client_asked(asked: bool) -> None:
    """Usage accounting (server.auth) reads StreamReply.usage; the client sees usage only if it asked."""
    from relaystack.providers.base import StreamReply

    provider = LlamaCppProvider("local", {})
    provider._worker = _ScriptedWorker()  # type: ignore[assignment]
    entry = provider.static_models()[0]
    body: dict[str, Any] = {"messages": [{"role": "user", "content": "hi"}], "stream": True}
    if asked:
        body["stream_options"] = {"include_usage": True}
    reply = await provider.chat_completion(body, CallContext(model=entry, requested_model=entry.identifier))
    assert isinstance(reply, StreamReply)
    text = b"".join([block async for block in reply.blocks])
    assert reply.usage == {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10}
    assert (b'"total_tokens":10' in text) is asked
