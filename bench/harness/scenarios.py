"""The scenarios, the URL each gateway serves them at, and the check that an answer is right.

A check is strict on what a client relies on: status 200, valid JSON or SSE, the model id the
client sent, every streamed token in order, a final ``finish_reason: "stop"`` and ``data: [DONE]``.

The front-end scenarios (``responses``, ``messages`` and their 500-event streams) ask relaystack's
``/v1/responses`` and ``/v1/messages`` for the same upstream answers as ``chat`` and ``sse500``;
gateways reached by path (the upstream, the raw relay) serve the chat route instead, so a
front-end's ratio to the raw relay prices the translation (checks: ``harness.frontend_checks``).
"""

from __future__ import annotations

import http.client
import json
import os
import time
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from harness.bodies import (
    CHAT_TEXT,
    EMBED_BATCH,
    EMBED_DIM,
    JSON_PREFIXES,
    LONG_TEXTS,
    ROUTED_MODELS,
    STREAM_PREFIXES,
    request_body,
    stream_text,
)
from harness.frontend_checks import FRONTENDS, check_frontend

# chat: a ~340-byte answer; chat1k / chat4k: ~1 KB and ~4 KB answers as OpenAI sends them;
# embed: one 1,536-float embedding (text-embedding-3-small's size, ~21 KB); embed32: a batch of 32 (~680 KB)
SCENARIOS = ("chat", "chat1k", "chat4k", "sse50", "sse500", "embed", "embed32", "completions", "models",
             *FRONTENDS)
# chat through a model with two deployments (the router's cost), relaystack only, not in the default matrix:
# chat2 both healthy, chat2down the first refusing connections. --only chat,chat2,chat2down
ROUTED_SCENARIOS = tuple(ROUTED_MODELS)
ENDPOINTS = {"chat": "chat/completions", "chat1k": "chat/completions", "chat4k": "chat/completions",
             "sse50": "chat/completions", "sse500": "chat/completions",
             "ttfb": "chat/completions", "embed": "embeddings", "embed32": "embeddings", "completions": "completions",
             "models": "models", **FRONTENDS, **{s: "chat/completions" for s in ROUTED_MODELS}}
MODELS = {"chat": "bench-chat", "chat1k": "bench-chat1k", "chat4k": "bench-chat4k", "embed32": "bench-embed32",
          "sse50": "bench-sse50", "sse500": "bench-sse500", "ttfb": "bench-ttfb",
          "embed": "bench-embed", "completions": "bench-chat", "responses": "bench-chat",
          "responses500": "bench-sse500", "messages": "bench-chat", "messages500": "bench-sse500",
          **ROUTED_MODELS}
# the upstream path prefix of a scenario whose answer is not the plain /v1 one, for gateways reached by path
_PATH_PREFIXES = {"sse50": "sse50", "sse500": "sse500", "ttfb": "ttfb", "responses500": "sse500",
                  "messages500": "sse500", **{s: JSON_PREFIXES[m] for s, m in MODELS.items() if m in JSON_PREFIXES}}


def serves(gateway: str, scenario: str) -> bool:
    """Only relaystack has the two-deployment models."""
    return scenario not in ROUTED_MODELS or gateway.startswith("relaystack")


def authorization() -> str:
    """The bearer every request carries: a virtual key when a gateway under test has server.auth on
    (``Gateway.start`` sets ``BENCH_TOKEN``); gateways without auth ignore it."""
    return "Bearer " + os.environ.get("BENCH_TOKEN", "bench")


def method(scenario: str) -> str:
    return "GET" if scenario == "models" else "POST"


def url_for(base: str, api_prefix: str, scenario: str, *, by_path: bool) -> str:
    """``by_path``: a gateway that does not route by model (the upstream itself, the raw relay)
    reaches a streaming body through its own upstream path prefix (``/sse500/v1``)."""
    prefix = api_prefix
    if by_path and scenario in _PATH_PREFIXES:
        prefix = f"/{_PATH_PREFIXES[scenario]}/v1"
    endpoint = "chat/completions" if by_path and scenario in FRONTENDS else ENDPOINTS[scenario]
    return f"{base}{prefix}/{endpoint}"


def fetch(url: str, scenario: str, model: str | None = None, timeout: float = 30.0) -> tuple[int, str, bytes]:
    req = urllib.request.Request(url, data=request_body(scenario, model), method=method(scenario),
                                 headers={"Content-Type": "application/json", "Authorization": authorization()})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers.get("Content-Type", ""), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read()


def check(url: str, scenario: str, model: str | None = None) -> list[str]:
    """Problems with the answer at ``url`` (empty: correct). ``model``: the id a peer gives our
    model, sent instead of ours and accepted back in the answer (relaystack gets none: it must
    answer with the caller's id)."""
    accepted = {MODELS.get(scenario), model} - {None}
    try:
        status, kind, body = fetch(url, scenario, model)
    except OSError as exc:
        return [f"request failed: {exc}"]
    if status != 200:
        return [f"status {status}: {body[:300]!r}"]
    if scenario in FRONTENDS:
        if url.endswith("/chat/completions"):  # a gateway reached by path answers the chat route
            chat_like = "sse500" if scenario.endswith("500") else "chat"
            if chat_like == "sse500":
                return check_sse(kind, body, accepted, STREAM_PREFIXES["bench-sse500"][1])
            return _check_json(chat_like, json.loads(body), accepted, model)
        streamed = stream_text(STREAM_PREFIXES["bench-sse500"][1])
        return check_frontend(scenario, kind, body, accepted, CHAT_TEXT, streamed)
    if scenario in ("sse50", "sse500"):
        return check_sse(kind, body, accepted, STREAM_PREFIXES[MODELS[scenario]][1])
    try:
        doc = json.loads(body)
    except ValueError:
        return [f"not JSON: {body[:200]!r}"]
    return _check_json(scenario, doc, accepted, model)


def _check_json(scenario: str, doc: Any, accepted: set[str | None], model: str | None) -> list[str]:
    problems: list[str] = []
    if not isinstance(doc, dict):
        return [f"expected an object, got {type(doc).__name__}"]
    if scenario == "models":
        ids = [m.get("id") for m in doc.get("data", []) if isinstance(m, dict)]
        if (model or "bench-chat") not in ids:
            problems.append(f"{model or 'bench-chat'} not listed in {ids}")
        return problems
    if doc.get("model") not in accepted:
        problems.append(f"model {doc.get('model')!r}, expected {' or '.join(map(repr, sorted(accepted)))}")
    if scenario in ("chat", "chat1k", "chat4k") or scenario in ROUTED_MODELS:
        text = LONG_TEXTS.get(MODELS.get(scenario, ""), CHAT_TEXT)
        choice = (doc.get("choices") or [{}])[0]
        if doc.get("object") != "chat.completion" or choice.get("message", {}).get("content") != text:
            problems.append(f"not the upstream's chat completion: {str(doc)[:200]}")
    elif scenario == "completions":
        choice = (doc.get("choices") or [{}])[0]
        if doc.get("object") != "text_completion" or not isinstance(choice.get("text"), str):
            problems.append(f"not a text completion: {str(doc)[:200]}")
    elif scenario in ("embed", "embed32"):
        problems += _check_embeddings(doc, EMBED_BATCH if scenario == "embed32" else 1)
    return problems


def _check_embeddings(doc: dict[str, Any], items: int) -> list[str]:
    data = doc.get("data")
    if not isinstance(data, list) or len(data) != items:
        return [f"expected {items} embeddings: {str(doc)[:200]}"]
    for i, item in enumerate(data):
        vector = item.get("embedding") if isinstance(item, dict) else None
        if not (isinstance(vector, list) and len(vector) == EMBED_DIM and item.get("index") == i):
            return [f"embedding {i} is not {EMBED_DIM} floats at index {i}: {str(item)[:200]}"]
    return []


def sse_payloads(body: bytes) -> list[str]:
    text = body.decode("utf-8", "replace").replace("\r\n", "\n")
    out = []
    for event in text.split("\n\n"):
        data = [ln[5:].lstrip(" ") for ln in event.split("\n") if ln.startswith("data:")]
        if data:
            out.append("\n".join(data))
    return out


def check_sse(kind: str, body: bytes, accepted: set[str], chunks: int) -> list[str]:
    problems = [] if kind.startswith("text/event-stream") else [f"content-type {kind!r}"]
    payloads = sse_payloads(body)
    if not payloads or payloads[-1] != "[DONE]":
        problems.append(f"stream does not end with data: [DONE] ({len(payloads)} events)")
    text, finish, models = [], None, set()
    for payload in payloads:
        if payload == "[DONE]":
            continue
        try:
            event = json.loads(payload)
        except ValueError:
            problems.append(f"event is not JSON: {payload[:120]!r}")
            break
        if event.get("object") != "chat.completion.chunk":
            problems.append(f"event object {event.get('object')!r}")
            break
        models.add(event.get("model"))
        for choice in event.get("choices") or []:
            text.append((choice.get("delta") or {}).get("content") or "")
            finish = choice.get("finish_reason") or finish
    if not models or not models <= accepted:
        problems.append(f"models in the stream {sorted(map(str, models))}, expected {sorted(accepted)}")
    if "".join(text) != stream_text(chunks):
        problems.append(f"streamed text differs from the upstream's {chunks - 1} tokens")
    if finish != "stop":
        problems.append(f"finish_reason {finish!r}, expected 'stop'")
    return problems


def time_to_first_event(url: str, model: str | None = None, timeout: float = 10.0) -> dict[str, Any]:
    """Seconds until the first ``data:`` bytes of the slow stream arrive, and until its end."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)
    body = request_body("ttfb", model)
    start = time.perf_counter()
    conn.request("POST", parts.path, body=body, headers={"Content-Type": "application/json",
                                                          "Authorization": authorization()})
    resp = conn.getresponse()
    first: float | None = None
    received = b""
    while chunk := resp.read1(65536):
        received += chunk
        if first is None and b"data:" in received:
            first = time.perf_counter() - start
    total = time.perf_counter() - start
    conn.close()
    problems = [] if resp.status == 200 else [f"status {resp.status}"]
    if resp.status == 200:
        accepted = {"bench-ttfb", model or "bench-ttfb"}
        problems += check_sse(resp.getheader("Content-Type", ""), received, accepted, 5)
    return {"first_event_s": first, "total_s": total, "problems": problems}
