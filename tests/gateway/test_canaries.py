"""Canary keys (the admin key, virtual keys, the configured and a per-request provider key) never
appear in any answer, log line, stored row, metric or recording, on every path, errors included.

One server, in record mode with debug logging (the most it ever writes), is driven through the
success paths and every refusal and failure the gateway has; then every byte it produced is searched.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Iterator

import httpx
import pytest
from gateway_helpers import ADMIN_KEY, PROVIDER_KEY, GatewayStack, bearer, chat, start_gateway

from fakes.fake_together import FakeTogether
from support.stack import CHAT_MODEL, EMBED_MODEL

TENANT_KEY = "tenant-provider-canary-" + secrets.token_hex(16)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayStack]:
    home = tmp_path_factory.mktemp("canaries")
    recordings = home / "recordings"
    fake = FakeTogether((PROVIDER_KEY, TENANT_KEY)).start()
    stack = start_gateway(home, fake, args=("--log-level", "debug", "--record-mode", "record",
                                            "--recordings", str(recordings)))
    try:
        yield stack
    finally:
        stack.server.stop()
        fake.stop()


class Seen:
    """Every answer the clients got: status line, headers and body."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def add(self, response: httpx.Response) -> httpx.Response:
        self.texts.append(f"{response.status_code} {dict(response.headers)} {response.text}")
        return response


def drive_every_path(stack: GatewayStack, seen: Seen) -> list[str]:
    """Returns the virtual keys it created (canaries too)."""
    url = stack.base_url
    post = lambda path, key, body, **headers: seen.add(  # noqa: E731
        httpx.post(url + path, json=body, headers={**bearer(key), **headers}, timeout=30))
    created = seen.add(stack.admin("POST", "/v1/admin/keys", json={"name": "canary", "limits": {"rpm": 1000}}))
    key_id, key = created.json()["id"], created.json()["key"]
    limited_id, limited = stack.create_key(limits={"rpm": 1})
    budget_id, broke = stack.create_key(budget={"max_usd": 0.000001})
    _, only_embeddings = stack.create_key(models=[EMBED_MODEL])
    tenant = {"X-LlamaStack-Provider-Data": json.dumps({"together_api_key": TENANT_KEY})}
    # success: JSON, stream, embeddings, per-request provider key
    post("/v1/chat/completions", key, chat())
    post("/v1/chat/completions", key, chat(stream=True, stream_options={"include_usage": True}))
    post("/v1/embeddings", key, {"model": EMBED_MODEL, "input": "x"})
    post("/v1/chat/completions", key, chat(text="tenant"), **tenant)
    post("/v1/chat/completions", key, chat(text="tenant", stream=True), **tenant)
    # refusals: no key, wrong keys, a key in the wrong header, forbidden model, limits, budget
    seen.add(httpx.post(url + "/v1/chat/completions", json=chat()))
    post("/v1/chat/completions", key + "x", chat())
    post("/v1/chat/completions", ADMIN_KEY[:-1], chat())
    post("/v1/chat/completions", "Basic " + key, chat())
    post("/v1/chat/completions", only_embeddings, chat())
    for _ in range(2):
        post("/v1/chat/completions", limited, chat())
    for _ in range(2):
        post("/v1/chat/completions", broke, chat())
    post("/v1/admin/keys", key, {})
    # clients putting keys where they do not belong: the model id, the provider-data header
    # (a 404 names the model the client sent, like OpenAI's: that echo goes back to its own sender only,
    # so it is not counted as an answer here; the log, the store and the metrics are still searched)
    for model in (key, "together/" + PROVIDER_KEY):
        response = httpx.post(url + "/v1/chat/completions", json=chat(model=model), headers=bearer(key))
        assert response.status_code == 404
    post("/v1/chat/completions", key, chat(), **{"X-LlamaStack-Provider-Data": "not json " + TENANT_KEY})
    # the front-ends: the Messages API with the key in x-api-key (Anthropic's SDK), the Responses API
    anthropic_body = {"model": CHAT_MODEL, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    for body in (anthropic_body, {**anthropic_body, "stream": True}):
        seen.add(httpx.post(url + "/v1/messages", json=body, headers={"x-api-key": key, **tenant}, timeout=30))
    seen.add(httpx.post(url + "/v1/messages", json=anthropic_body, headers={"x-api-key": key + "x"}, timeout=30))
    seen.add(httpx.post(url + "/v1/messages", json=anthropic_body, headers={"x-api-key": limited}, timeout=30))
    post("/v1/responses", key, {"model": CHAT_MODEL, "input": "hi"}, **tenant)
    post("/v1/responses", key, {"model": CHAT_MODEL, "input": "hi", "stream": True})
    stack.fake.fail_next(401, message=f"Incorrect API key provided: {TENANT_KEY}")
    post("/v1/responses", key, {"model": CHAT_MODEL, "input": "upstream 401"}, **tenant)
    # upstream failures, one echoing the provider key, one mid-stream
    stack.fake.fail_next(401, message=f"Incorrect API key provided: {PROVIDER_KEY}")
    post("/v1/chat/completions", key, chat(text="upstream 401"))
    stack.fake.fail_next(500, message=f"boom {TENANT_KEY}")
    post("/v1/chat/completions", key, chat(text="upstream 500"), **tenant)
    stack.fake.cut_stream_after(2)
    post("/v1/chat/completions", key, chat(text="cut", stream=True))
    # revoked and expired keys
    stack.admin("DELETE", f"/v1/admin/keys/{limited_id}")
    post("/v1/chat/completions", limited, chat())
    _, expired = stack.create_key(expires_at=int(time.time()) - 5)
    post("/v1/chat/completions", expired, chat())
    # everything an admin can read
    for path in ("/v1/admin/keys", f"/v1/admin/keys/{key_id}", f"/v1/admin/keys/{budget_id}", "/v1/admin/usage",
                 "/metrics", "/v1/providers", "/v1/providers/together", "/v1/chat/completions", "/v1/models",
                 "/openapi.json", "/v1/health"):
        seen.add(stack.admin("GET", path))
    seen.add(stack.admin("PATCH", f"/v1/admin/keys/{key_id}", json={"team": "x"}))
    return [key, limited, broke, only_embeddings, expired]


def test_canaries_never_leak_anywhere(recording: GatewayStack) -> None:
    stack = recording
    seen = Seen()
    virtual_keys = drive_every_path(stack, seen)
    canaries = {"admin": ADMIN_KEY, "provider": PROVIDER_KEY, "tenant provider": TENANT_KEY,
                **{f"virtual key {i}": key for i, key in enumerate(virtual_keys)}}
    # the virtual keys' secret parts too (the public id inside a key is meant to be seen)
    canaries.update({f"secret of virtual key {i}": key[17:] for i, key in enumerate(virtual_keys)})
    assert len(seen.texts) > 30
    answers = "\n".join(seen.texts)
    created_once = [t for t in seen.texts if virtual_keys[0] in t]
    assert len(created_once) == 1 and created_once[0].startswith("201")  # the create answer, and only it
    answers = answers.replace(created_once[0], "")
    stack.server.stop()  # flush: the store's WAL, the log
    places = {"answers": answers, "log": stack.server.log()}
    for path in stack.home.rglob("*"):
        if path.is_file() and path.name != "run.yaml" and not path.name.startswith("server-"):
            places[str(path.relative_to(stack.home))] = path.read_bytes().decode("latin-1")
    assert any(name.endswith(".json") and "recordings" in name for name in places)  # the recordings exist
    assert any("relaystack.db" in name for name in places)
    leaks = [(what, where) for what, canary in canaries.items() for where, text in places.items() if canary in text]
    for what, where in leaks:  # (shown when it fails)
        text = places[where]
        at = text.find(canaries[what])
        print(what, where, repr(text[max(0, at - 400): at + 80]))
    assert leaks == []
