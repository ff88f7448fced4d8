"""The embedded default providers: a local chat model and a local embedding model.

``inline::llama-cpp`` serves SmolLM2-135M-Instruct (chat + completions) and
``inline::sentence-transformers`` serves all-MiniLM-L6-v2 (embeddings), both offline, in
process (see ``relaystack.local``). Each model lives on its own worker thread; these
classes only validate requests and shape OpenAI replies.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from relaystack.errors import ConfigError, ModelNotFoundError, ModelTypeError, RelaystackError
from relaystack.local.llamacpp import Finished, GenEvent, LlamaEngine, LlamaSettings, Started, TextDelta
from relaystack.local.models import (
    CHAT_MODEL_ID,
    CHAT_RESOURCE_ID,
    EMBEDDING_DIMENSION,
    EMBEDDING_MAX_TOKENS,
    EMBEDDING_MODEL_ID,
    EMBEDDING_RESOURCE_ID,
    EmbeddingSettings,
    chat_worker,
    embedding_worker,
)
from relaystack.local.params import parse_chat, parse_completion, parse_embeddings
from relaystack.local.worker import ModelWorker
from relaystack.providers.base import CallContext, JsonReply, ModelEntry, Provider, Reply, StreamReply, sse_event

if TYPE_CHECKING:
    from relaystack.local.minilm import MiniLM

__all__ = ["LlamaCppProvider", "SentenceTransformersProvider"]


class _Options:
    """Typed reads of a provider's ``config`` dict; unknown keys are a start-up error."""

    def __init__(self, provider_type: str, config: dict[str, Any], allowed: set[str]) -> None:
        unknown = sorted(set(config) - allowed)
        if unknown:
            raise ConfigError(
                f"{provider_type}: unknown config key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
            )
        self.provider_type = provider_type
        self.config = config

    def flag(self, key: str, default: bool) -> bool:
        value = self.config.get(key, default)
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if not isinstance(value, bool):
            raise ConfigError(f"{self.provider_type}: '{key}' must be true or false, got {value!r}")
        return value

    def integer(self, key: str, default: int, lo: int) -> int:
        value = self.config.get(key, default)
        if isinstance(value, str) and value.strip().isdigit():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int) or value < lo:
            raise ConfigError(f"{self.provider_type}: '{key}' must be an integer >= {lo}, got {value!r}")
        return value

    def path(self, key: str) -> Path | None:
        value = self.config.get(key)
        if value in (None, ""):
            return None
        if not isinstance(value, str):
            raise ConfigError(f"{self.provider_type}: '{key}' must be a path string, got {value!r}")
        return Path(value).expanduser()

    def text(self, key: str, default: str) -> str:
        value = self.config.get(key, default)
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{self.provider_type}: '{key}' must be a non-empty string")
        return value


class _LocalProvider(Provider):
    kind: str = "llm"
    resource_id: str = ""

    def __init__(self, provider_id: str, config: dict[str, Any], model_id: str, preload: bool) -> None:
        super().__init__(provider_id)
        self.model_id = model_id
        self.preload = preload
        self._config = dict(config)

    @property
    def worker(self) -> ModelWorker[Any]:
        raise NotImplementedError

    @property
    def state(self) -> str:
        """One of not_loaded, loading, ready or "failed: <reason>" (for GET /v1/health)."""
        return self.worker.state

    async def start(self) -> None:
        if self.preload:
            self.worker.start()  # loads in the background; never raises

    async def stop(self) -> None:
        await self.worker.close()

    def status(self) -> dict[str, Any]:
        """OK when it can answer now (ready, or not_loaded: loads on first use); "Loading" is not ready yet.
        ``queue``: requests waiting for the model, plus the one it runs."""
        state = self.state
        status = "Error" if state.startswith("failed") else "Loading" if state == "loading" else "OK"
        return {"status": status, "state": state, "models": {self.model_id: state}, "queue": self.worker.queue_depth}

    def public_config(self) -> dict[str, Any]:
        return dict(self._config)

    def _check(self, call: CallContext, wanted: str) -> None:
        """The endpoint (``wanted``) must match what this provider's model is, and so must the registry's entry."""
        if self.kind != wanted:
            what = "an embedding model" if self.kind == "embedding" else "a chat (llm) model"
            where = "POST /v1/embeddings" if self.kind == "embedding" else "POST /v1/chat/completions"
            raise ModelTypeError(f"'{call.requested_model}' is {what}: use it with {where}.", param="model")
        if call.model.model_type != self.kind:
            raise ModelTypeError(
                f"'{call.requested_model}' is registered as model_type {call.model.model_type!r}, but provider "
                f"'{self.provider_id}' ({self.provider_type}) serves model_type {self.kind!r}: fix the model entry.",
                param="model",
            )
        if call.upstream_model not in (self.resource_id, self.model_id):
            raise ModelNotFoundError(
                f"Provider '{self.provider_id}' serves only '{self.model_id}', not '{call.upstream_model}'.",
                param="model",
            )


class LlamaCppProvider(_LocalProvider):
    """SmolLM2-135M-Instruct (Q4_1 GGUF) on llama-cpp-python: chat completions and completions."""

    provider_type = "inline::llama-cpp"
    kind = "llm"
    resource_id = CHAT_RESOURCE_ID

    def __init__(self, provider_id: str, config: dict[str, Any] | None = None) -> None:
        opts = _Options(
            self.provider_type,
            config or {},
            {"preload", "n_ctx", "n_threads", "n_threads_batch", "model_path", "model_id"},
        )
        defaults = LlamaSettings()
        self.settings = LlamaSettings(
            model_path=opts.path("model_path"),
            n_ctx=opts.integer("n_ctx", defaults.n_ctx, 64),
            n_threads=opts.integer("n_threads", defaults.n_threads, 1),
            n_threads_batch=opts.integer("n_threads_batch", defaults.n_threads_batch, 1),
        )
        super().__init__(provider_id, opts.config, opts.text("model_id", CHAT_MODEL_ID), opts.flag("preload", False))
        self._worker = chat_worker(self.model_id, self.settings)

    @property
    def worker(self) -> ModelWorker[LlamaEngine]:
        return self._worker

    def static_models(self) -> list[ModelEntry]:
        return [
            ModelEntry(
                identifier=self.model_id,
                provider_id=self.provider_id,
                provider_resource_id=self.resource_id,
                model_type="llm",
                metadata={"context_length": self.settings.n_ctx},
                source="builtin",
            )
        ]

    async def embeddings(self, body: dict[str, Any], call: CallContext) -> JsonReply:
        self._check(call, "embedding")  # always raises: this is a chat model
        raise AssertionError("unreachable")

    async def chat_completion(self, body: dict[str, Any], call: CallContext) -> Reply:
        self._check(call, "llm")
        req = parse_chat(body)

        def run(engine: LlamaEngine, cancelled: Callable[[], bool]) -> Iterator[GenEvent]:
            return engine.generate(engine.chat_prompt(req.messages), req.params, cancelled)

        shaper = _Shaper("chat.completion", "chatcmpl-", call.requested_model, req.include_usage)
        return await self._reply(run, shaper, req.stream)

    async def completion(self, body: dict[str, Any], call: CallContext) -> Reply:
        self._check(call, "llm")
        req = parse_completion(body)

        def run(engine: LlamaEngine, cancelled: Callable[[], bool]) -> Iterator[GenEvent]:
            return engine.generate(engine.text_prompt(req.prompt), req.params, cancelled)

        shaper = _Shaper("text_completion", "cmpl-", call.requested_model, req.include_usage)
        return await self._reply(run, shaper, req.stream)

    async def _reply(
        self, run: Callable[[LlamaEngine, Callable[[], bool]], Iterator[GenEvent]], shaper: _Shaper, stream: bool
    ) -> Reply:
        events = self._worker.stream(run)
        try:
            # waits for the load and the queue; errors (bad prompt, failed load) surface here,
            # before any byte is sent, so the API layer can still answer with a real status
            first = await anext(events)
        except BaseException:
            await events.aclose()
            raise
        if not isinstance(first, Started):
            await events.aclose()
            raise RelaystackError("The local model answered out of order.")
        if stream:
            blocks = shaper.stream(first, events)
            # the usage is known whether or not the client asked to see it (usage accounting reads it)
            return StreamReply(blocks=blocks, close=blocks.aclose, final_usage=lambda: shaper.final_usage)
        try:
            return JsonReply(data=await shaper.collect(first, events))
        finally:
            await events.aclose()


class _Shaper:
    """Turns engine events into OpenAI chat.completion / text_completion objects and chunks."""

    def __init__(self, obj: str, id_prefix: str, model: str, include_usage: bool) -> None:
        self.chat = obj == "chat.completion"
        self.obj = obj
        self.id = id_prefix + secrets.token_hex(12)
        self.created = int(time.time())
        self.model = model
        self.include_usage = include_usage
        self.final_usage: dict[str, int] | None = None  # set when a stream finishes

    def _usage(self, first: Started, done: Finished) -> dict[str, int]:
        total = first.prompt_tokens + done.completion_tokens
        return {
            "prompt_tokens": first.prompt_tokens,
            "completion_tokens": done.completion_tokens,
            "total_tokens": total,
        }

    async def collect(self, first: Started, events: AsyncGenerator[GenEvent, None]) -> dict[str, Any]:
        parts: list[str] = []
        async for event in events:
            if isinstance(event, TextDelta):
                parts.append(event.text)
            elif isinstance(event, Finished):
                text = "".join(parts)
                choice: dict[str, Any] = {"index": 0, "finish_reason": event.finish_reason, "logprobs": None}
                if self.chat:
                    choice["message"] = {"role": "assistant", "content": text}
                else:
                    choice["text"] = text
                return {
                    "id": self.id,
                    "object": self.obj,
                    "created": self.created,
                    "model": self.model,
                    "choices": [choice],
                    "usage": self._usage(first, event),
                }
        raise RelaystackError("The local model stopped before finishing its answer.")

    def _chunk(self, text: str | None, finish: str | None, *, role: bool = False) -> bytes:
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
        if self.chat:
            delta: dict[str, Any] = {"role": "assistant"} if role else {}
            if text is not None:
                delta["content"] = text
            choice["delta"] = delta
            obj = "chat.completion.chunk"
        else:
            choice["text"] = text or ""
            obj = "text_completion"
        chunk: dict[str, Any] = {
            "id": self.id,
            "object": obj,
            "created": self.created,
            "model": self.model,
            "choices": [choice],
        }
        if self.include_usage:
            chunk["usage"] = None
        return sse_event(orjson.dumps(chunk))

    async def stream(self, first: Started, events: AsyncGenerator[GenEvent, None]) -> AsyncGenerator[bytes, None]:
        """Framed SSE blocks; ends normally only after the finish_reason chunk (and the usage chunk)."""
        try:
            if self.chat:
                yield self._chunk("", None, role=True)
            async for event in events:
                if isinstance(event, TextDelta):
                    yield self._chunk(event.text, None)
                elif isinstance(event, Finished):
                    yield self._chunk(None if self.chat else "", event.finish_reason)
                    self.final_usage = self._usage(first, event)
                    if self.include_usage:
                        obj = "chat.completion.chunk" if self.chat else "text_completion"
                        usage = {
                            "id": self.id, "object": obj, "created": self.created, "model": self.model,
                            "choices": [], "usage": self.final_usage,
                        }  # fmt: skip
                        yield sse_event(orjson.dumps(usage))
                    return
            raise RelaystackError("The local model stopped before finishing its answer.")
        finally:
            await events.aclose()


class SentenceTransformersProvider(_LocalProvider):
    """all-MiniLM-L6-v2 (384-d) as a numpy forward pass: embeddings only."""

    provider_type = "inline::sentence-transformers"
    kind = "embedding"
    resource_id = EMBEDDING_RESOURCE_ID

    def __init__(self, provider_id: str, config: dict[str, Any] | None = None) -> None:
        allowed = {"preload", "n_threads", "batch_size", "model_path", "model_id"}
        opts = _Options(self.provider_type, config or {}, allowed)
        self.settings = EmbeddingSettings(
            model_dir=opts.path("model_path"),
            n_threads=opts.integer("n_threads", 1, 1),
            batch_size=opts.integer("batch_size", 32, 1),
        )
        model_id = opts.text("model_id", EMBEDDING_MODEL_ID)
        super().__init__(provider_id, opts.config, model_id, opts.flag("preload", False))
        self._worker = embedding_worker(self.model_id, self.settings)

    @property
    def worker(self) -> ModelWorker[MiniLM]:
        return self._worker

    def static_models(self) -> list[ModelEntry]:
        return [
            ModelEntry(
                identifier=self.model_id,
                provider_id=self.provider_id,
                provider_resource_id=self.resource_id,
                model_type="embedding",
                metadata={"embedding_dimension": EMBEDDING_DIMENSION, "context_length": EMBEDDING_MAX_TOKENS},
                source="builtin",
            )
        ]

    async def chat_completion(self, body: dict[str, Any], call: CallContext) -> Reply:
        self._check(call, "llm")  # always raises: this is an embedding model
        raise AssertionError("unreachable")

    async def completion(self, body: dict[str, Any], call: CallContext) -> Reply:
        self._check(call, "llm")
        raise AssertionError("unreachable")

    async def embeddings(self, body: dict[str, Any], call: CallContext) -> JsonReply:
        self._check(call, "embedding")
        req = parse_embeddings(body, dimension=EMBEDDING_DIMENSION)
        vectors, counts = await self._worker.call(lambda model, cancelled: model.embed(req.texts, cancelled))
        if req.encoding_format == "base64":
            values: list[Any] = [base64.b64encode(v.astype("<f4").tobytes()).decode("ascii") for v in vectors]
        else:
            values = vectors.tolist()
        tokens = int(sum(counts))
        return JsonReply(
            data={
                "object": "list",
                "data": [{"object": "embedding", "index": i, "embedding": v} for i, v in enumerate(values)],
                "model": call.requested_model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )
