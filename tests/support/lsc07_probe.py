"""Run by the llama-stack-client 0.7.x venv (.venv-lsc07), not by pytest: calls everything a 0.7
user calls that relaystack serves, and prints one JSON object with what came back.

    .venv-lsc07/bin/python tests/support/lsc07_probe.py BASE_URL CHAT_MODEL EMBED_MODEL PROVIDER_KEY
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from typing import Any

import llama_stack_client
from llama_stack_client import LlamaStackClient, NotFoundError


def main() -> None:
    base_url, chat_model, embed_model, provider_key = sys.argv[1:5]
    client = LlamaStackClient(base_url=base_url, max_retries=0)
    keyed = LlamaStackClient(base_url=base_url, max_retries=0, provider_data={"together_api_key": provider_key})
    hello = [{"role": "user", "content": "Say hello"}]
    out: dict[str, Any] = {"client_version": llama_stack_client.__version__}

    def probe(name: str, call: Callable[[], Any]) -> None:
        try:
            out[name] = call()
        except Exception as exc:  # reported, so the test names what broke
            out[name] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()[-1500:]}

    probe("models", lambda: [(m.id, m.model_type, m.provider_id) for m in client.models.list()])
    probe("model", lambda: client.models.retrieve(chat_model).id)
    probe("chat", lambda: _chat(client.chat.completions.create(model=chat_model, messages=hello)))
    probe("chat_stream", lambda: _stream(client.chat.completions.create(model=chat_model, messages=hello,
                                                                         stream=True)))
    probe("chat_keyed", lambda: _chat(keyed.chat.completions.create(model=chat_model, messages=hello)))
    probe("completion", lambda: client.completions.create(model=chat_model, prompt="Once upon",
                                                          max_tokens=8).choices[0].text)
    probe("completion_stream", lambda: "".join(
        c.choices[0].text for c in client.completions.create(model=chat_model, prompt="Once upon", max_tokens=8,
                                                              stream=True) if c.choices))
    probe("embeddings", lambda: [len(d.embedding) for d in client.embeddings.create(model=embed_model,
                                                                                   input=["a", "b"]).data])
    probe("stored", lambda: [c.id for c in client.chat.completions.list(limit=50).data])
    probe("stored_one", lambda: client.chat.completions.retrieve(out["chat"]["id"]).id)
    probe("routes", lambda: [(r.method, r.route, r.provider_types) for r in client.routes.list()])
    probe("routes_v1", lambda: len(client.routes.list(api_filter="v1")))
    probe("health", lambda: client.inspect.health().status)
    probe("version", lambda: client.inspect.version().version)
    probe("providers", lambda: [p.provider_id for p in client.providers.list()])
    probe("provider", lambda: client.providers.retrieve("together").provider_type)
    probe("admin_routes", lambda: len(client.alpha.admin.list_routes()))
    probe("admin_health", lambda: client.alpha.admin.health().status)
    probe("admin_version", lambda: client.alpha.admin.version().version)
    probe("admin_providers", lambda: [p.provider_id for p in client.alpha.admin.list_providers()])
    probe("admin_provider", lambda: client.alpha.admin.inspect_provider("together").provider_id)

    def missing_model() -> str:
        try:
            client.chat.completions.create(model="together/no-such-model", messages=hello)
        except NotFoundError as exc:
            return f"NotFoundError {exc.status_code}"
        return "no error"

    probe("missing_model", missing_model)
    print(json.dumps(out))


def _chat(completion: Any) -> dict[str, Any]:
    return {"id": completion.id, "content": completion.choices[0].message.content,
            "finish_reason": completion.choices[0].finish_reason, "model": completion.model}


def _stream(chunks: Any) -> dict[str, Any]:
    text, finish, count = [], None, 0
    for chunk in chunks:
        count += 1
        for choice in chunk.choices:
            text.append(choice.delta.content or "")
            finish = choice.finish_reason or finish
    return {"text": "".join(text), "finish_reason": finish, "chunks": count}


if __name__ == "__main__":
    main()
