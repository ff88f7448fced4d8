"""One worker thread per model: concurrent requests queue, disconnects stop generation.

No timings: the assertions count tokens the engine really sampled
(``LlamaEngine.sampled_tokens``, read on the worker thread) and record the order in
which jobs ran.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any

from localmodels import (  # noqa: F401  (fixtures)
    LOCAL,
    chunks_of,
    fixture_chat_call,
    fixture_chat_provider,
    fixture_embed_call,
    fixture_embed_provider,
    json_of,
)

from relaystack.local.llamacpp import GenEvent, LlamaEngine, SamplingParams
from relaystack.providers.base import CallContext, StreamReply
from relaystack.providers.local import LlamaCppProvider, SentenceTransformersProvider

pytestmark = LOCAL

COUNTING = "1, 2, 3, 4, 5, 6, 7, 8, 9, 10,"  # greedy SmolLM2 keeps counting: never stops by itself early


def ask(text: str, **extra: Any) -> dict[str, Any]:
    return {"messages": [{"role": "user", "content": text}], "temperature": 0, "max_tokens": 6, **extra}


async def sampled(provider: LlamaCppProvider) -> int:
    """Tokens the engine has sampled so far (read on the worker thread, after earlier jobs)."""
    return await provider.worker.call(lambda engine, _cancelled: engine.sampled_tokens)


async def test_simultaneous_requests_all_get_their_own_right_answer(
    chat_provider: LlamaCppProvider,
    chat_call: CallContext,
    embed_provider: SentenceTransformersProvider,
    embed_call: CallContext,
) -> None:
    questions = ["What is 2+2?", "Name a color.", "Say hello in French."]
    alone = [json_of(await chat_provider.chat_completion(ask(q), chat_call)) for q in questions]
    embed_alone = [json_of(await embed_provider.embeddings({"input": [q]}, embed_call)) for q in questions]

    async def streamed(q: str) -> str:
        chunks = await chunks_of(await chat_provider.chat_completion(ask(q, stream=True), chat_call))
        return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks)

    results = await asyncio.gather(
        *(chat_provider.chat_completion(ask(q), chat_call) for q in questions),
        streamed(questions[1]),
        *(embed_provider.embeddings({"input": [q]}, embed_call) for q in questions),
    )
    for mine, ref in zip(results[:3], alone, strict=True):
        assert json_of(mine)["choices"][0]["message"] == ref["choices"][0]["message"]
        assert json_of(mine)["usage"] == ref["usage"]
    assert results[3] == alone[1]["choices"][0]["message"]["content"]
    for i, reply in enumerate(results[4:]):
        assert json_of(reply)["data"] == embed_alone[i]["data"]


async def test_jobs_run_one_at_a_time_and_the_loop_stays_free(chat_provider: LlamaCppProvider) -> None:
    log: list[tuple[str, int]] = []
    running = threading.Event()
    params = SamplingParams(max_tokens=4, temperature=0.0)

    def job(i: int) -> Callable[[LlamaEngine, Callable[[], bool]], Iterator[GenEvent]]:
        def run(engine: LlamaEngine, cancelled: Callable[[], bool]) -> Iterator[GenEvent]:
            log.append(("start", i))
            running.set()
            try:
                yield from engine.generate(engine.text_prompt(f"Number {i}:"), params, cancelled)
            finally:
                running.clear()
                log.append(("end", i))

        return run

    async def consume(i: int) -> int:
        return len([event async for event in chat_provider.worker.stream(job(i))])

    ticks_during_inference = 0
    done = False

    async def ticker() -> None:
        nonlocal ticks_during_inference
        while not done:
            if running.is_set():
                ticks_during_inference += 1
            await asyncio.sleep(0.002)  # not a busy loop: it must not starve the worker of the GIL

    tick_task = asyncio.create_task(ticker())
    counts = await asyncio.gather(*(consume(i) for i in range(4)))
    done = True
    await tick_task
    assert all(n >= 3 for n in counts)  # Started, text, Finished
    # strictly sequential: every job ends before the next one starts
    assert [kind for kind, _ in log] == ["start", "end"] * 4
    assert [i for kind, i in log if kind == "start"] == [i for kind, i in log if kind == "end"]
    # the event loop kept running while the model computed on its thread
    assert ticks_during_inference > 0


async def test_closing_a_stream_stops_generation_at_the_next_token(
    chat_provider: LlamaCppProvider, chat_call: CallContext
) -> None:
    body: dict[str, Any] = {"prompt": COUNTING, "temperature": 0, "max_tokens": 64}
    before = await sampled(chat_provider)
    whole = json_of(await chat_provider.completion(body, chat_call))
    assert whole["usage"]["completion_tokens"] == 64  # left alone, it runs to max_tokens
    assert await sampled(chat_provider) - before == 64

    before = await sampled(chat_provider)
    reply = await chat_provider.completion({**body, "stream": True}, chat_call)
    assert isinstance(reply, StreamReply)
    first = await anext(reply.blocks)
    assert b'"text"' in first
    await reply.aclose()  # what the API layer does when the client disconnects
    stopped_after = await sampled(chat_provider) - before
    # the worker ran ahead of this reader by at most a few tokens, then saw the cancel
    assert 1 <= stopped_after < 32, stopped_after

    # and the worker is free again: the next request is answered in full
    again = json_of(await chat_provider.completion({**body, "max_tokens": 5}, chat_call))
    assert again["usage"]["completion_tokens"] == 5


async def test_a_request_cancelled_while_queued_never_runs(
    chat_provider: LlamaCppProvider, chat_call: CallContext
) -> None:
    before = await sampled(chat_provider)
    running = await chat_provider.completion(
        {"prompt": COUNTING, "temperature": 0, "max_tokens": 16, "stream": True}, chat_call
    )
    assert isinstance(running, StreamReply)
    await anext(running.blocks)  # the first request holds the worker now
    queued = asyncio.create_task(
        chat_provider.completion({"prompt": COUNTING, "temperature": 0, "max_tokens": 16}, chat_call)
    )
    await asyncio.sleep(0)  # let it enqueue its job behind the running one
    queued.cancel()  # the client of the queued request hangs up
    rest = [block async for block in running.blocks]
    assert b'"finish_reason":"length"' in rest[-1]
    assert queued.cancelled()
    # exactly the 16 tokens of the first request: the cancelled one sampled nothing
    assert await sampled(chat_provider) - before == 16
