"""server.auth end to end: a real `relaystack run`, the openai SDK, the admin API and the CLI."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time

import httpx
import openai
import pytest
from gateway_helpers import ADMIN_KEY, GatewayStack, bearer, chat

from support.stack import CHAT_MODEL, EMBED_MODEL
from support.waiting import clear_of_window_edge


def client(stack: GatewayStack, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.base_url + "/v1", api_key=key, max_retries=0)


def test_every_route_but_health_and_version_needs_a_key(gateway: GatewayStack) -> None:
    paths = gateway.admin("GET", "/openapi.json").json()["paths"]
    checked = 0
    for path, operations in paths.items():
        for method in operations:
            concrete = re.sub(r"\{\w+\}", "x", path.replace("{provider_id}", "together"))
            response = httpx.request(method.upper(), gateway.base_url + concrete, json={})
            if path.endswith(("/health", "/version")):
                assert response.status_code == 200, (method, path)
                continue
            assert response.status_code == 401, (method, path, response.text)
            body = response.json()
            if path.endswith(("/messages", "/messages/count_tokens")):  # Anthropic's error shape
                assert body["type"] == "error" and body["error"]["type"] == "authentication_error"
            else:
                assert body["error"]["type"] == "authentication_error"
                assert body["error"]["code"] == "missing_api_key"
            checked += 1
    assert checked >= 29
    assert httpx.get(gateway.base_url + "/openapi.json").status_code == 401
    assert httpx.get(gateway.base_url + "/no/such/route").status_code == 401  # routes are not revealed


def test_a_wrong_key_is_refused_in_openai_shape_without_echoing_it(gateway: GatewayStack) -> None:
    for wrong in ("sk-not-ours", "rsk-0123456789ab-" + "x" * 43, ADMIN_KEY + "x"):
        with pytest.raises(openai.AuthenticationError) as raised:
            client(gateway, wrong).chat.completions.create(**chat())
        assert raised.value.status_code == 401
        assert wrong not in raised.value.response.text
        assert raised.value.response.json()["error"]["code"] == "invalid_api_key"


def test_a_virtual_key_works_with_bearer_and_x_api_key(gateway: GatewayStack) -> None:
    _, key = gateway.create_key(name="sdk")
    answer = client(gateway, key).chat.completions.create(**chat())
    assert answer.choices[0].message.content
    assert client(gateway, key).embeddings.create(model=EMBED_MODEL, input="hi").data[0].embedding
    assert [m.id for m in client(gateway, key).models.list()]
    response = httpx.post(gateway.base_url + "/v1/chat/completions", json=chat(), headers={"x-api-key": key})
    assert response.status_code == 200


def test_admin_routes_refuse_virtual_keys(gateway: GatewayStack) -> None:
    _, key = gateway.create_key()
    for method, path in [("GET", "/v1/admin/keys"), ("POST", "/v1/admin/keys"), ("GET", "/v1/admin/usage"),
                         ("GET", "/metrics"), ("GET", "/v1/chat/completions"), ("POST", "/v1/models"),
                         ("DELETE", "/v1/models/x"), ("GET", "/v1/openai/v1/chat/completions/abc")]:
        response = httpx.request(method, gateway.base_url + path, headers=bearer(key), json={})
        assert response.status_code == 403, (method, path)
        assert response.json()["error"]["code"] == "admin_key_required"


def test_key_lifecycle_secret_shown_once_revocation_at_once(gateway: GatewayStack) -> None:
    created = gateway.admin("POST", "/v1/admin/keys", json={
        "name": "ci", "owner": "alice", "team": "ml", "metadata": {"ticket": "T-1"}}).json()
    key_id, key = created["id"], created["key"]
    assert key.startswith("rsk-") and created["status"] == "active" and "secret_hash" not in created
    listed = gateway.admin("GET", "/v1/admin/keys").text
    shown = gateway.admin("GET", f"/v1/admin/keys/{key_id}").json()
    assert key not in listed and key not in str(shown) and "secret_hash" not in listed
    assert shown["owner"] == "alice" and shown["team"] == "ml" and shown["metadata"] == {"ticket": "T-1"}
    assert key_id in [k["id"] for k in gateway.admin("GET", "/v1/admin/keys?team=ml").json()["data"]]
    updated = gateway.admin("PATCH", f"/v1/admin/keys/{key_id}", json={"team": "infra"}).json()
    assert updated["team"] == "infra" and updated["owner"] == "alice"
    assert client(gateway, key).chat.completions.create(**chat()).choices
    assert gateway.admin("DELETE", f"/v1/admin/keys/{key_id}").json()["status"] == "revoked"
    with pytest.raises(openai.AuthenticationError) as raised:
        client(gateway, key).chat.completions.create(**chat())
    assert raised.value.response.json()["error"]["code"] == "key_revoked"
    assert gateway.admin("GET", "/v1/admin/keys/key-000000000000").status_code == 404


def test_an_expired_key_fails(gateway: GatewayStack) -> None:
    _, key = gateway.create_key(expires_at=int(time.time()) - 1)
    with pytest.raises(openai.AuthenticationError) as raised:
        client(gateway, key).chat.completions.create(**chat())
    assert raised.value.response.json()["error"]["code"] == "key_expired"


def test_allowed_models_and_providers(gateway: GatewayStack) -> None:
    _, only_chat = gateway.create_key(models=[CHAT_MODEL])
    assert client(gateway, only_chat).chat.completions.create(**chat()).choices
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client(gateway, only_chat).embeddings.create(model=EMBED_MODEL, input="x")
    assert raised.value.response.json()["error"]["code"] == "model_not_allowed"
    _, elsewhere = gateway.create_key(providers=["openai"])
    with pytest.raises(openai.PermissionDeniedError) as raised:
        client(gateway, elsewhere).chat.completions.create(**chat())
    assert raised.value.response.json()["error"]["code"] == "provider_not_allowed"


def test_bad_key_fields_are_400s_naming_the_field(gateway: GatewayStack) -> None:
    response = gateway.admin("POST", "/v1/admin/keys", json={"limits": {"rpm": 0}})
    assert response.status_code == 400 and response.json()["error"]["param"] == "limits.rpm"
    response = gateway.admin("POST", "/v1/admin/keys", json={"colour": "red"})
    assert response.status_code == 400 and response.json()["error"]["param"] == "colour"


def test_rate_limited_with_retry_after_and_openai_headers(gateway: GatewayStack) -> None:
    _, key = gateway.create_key(limits={"rpm": 2})
    sdk = client(gateway, key)
    ok = sdk.chat.completions.with_raw_response.create(**chat())
    assert ok.headers["x-ratelimit-limit-requests"] == "2" and ok.headers["x-ratelimit-remaining-requests"] == "1"
    sdk.chat.completions.create(**chat())
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(**chat())
    headers = raised.value.response.headers
    assert int(headers["retry-after"]) >= 1 and headers["x-ratelimit-remaining-requests"] == "0"
    assert raised.value.response.json()["error"]["code"] == "rate_limit_exceeded"


def test_per_model_limits(gateway: GatewayStack) -> None:
    _, key = gateway.create_key(model_limits={EMBED_MODEL: {"rpm": 1}})
    sdk = client(gateway, key)
    sdk.embeddings.create(model=EMBED_MODEL, input="x")
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.embeddings.create(model=EMBED_MODEL, input="x")
    assert EMBED_MODEL in raised.value.response.json()["error"]["message"]
    for _ in range(3):
        assert sdk.chat.completions.create(**chat()).choices  # the chat model is not limited


def test_tokens_per_minute_count_streams(gateway: GatewayStack) -> None:
    _, key = gateway.create_key(limits={"tpm": 20})
    sdk = client(gateway, key)
    for _ in range(2):  # 14 tokens each (the fake's usage): the second starts under 20
        assert list(sdk.chat.completions.create(**chat(), stream=True))
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(**chat())
    assert "20 tokens per minute" in raised.value.response.json()["error"]["message"]
    assert raised.value.response.headers["x-ratelimit-remaining-tokens"] == "0"


def test_concurrency_limit_and_slots_given_back_before_the_last_byte(gateway: GatewayStack) -> None:
    _, key = gateway.create_key(limits={"max_concurrent": 1})
    for _ in range(15):  # back to back: the previous request's slot is free before its answer ends
        assert httpx.post(gateway.base_url + "/v1/chat/completions", headers=bearer(key),
                          json=chat(stream=True)).status_code == 200
    gateway.fake.slow_stream(0.05)
    try:
        with httpx.stream("POST", gateway.base_url + "/v1/chat/completions", headers=bearer(key),
                          json=chat(stream=True), timeout=30) as slow:
            assert slow.status_code == 200
            second = httpx.post(gateway.base_url + "/v1/chat/completions", headers=bearer(key), json=chat())
            assert second.status_code == 429 and "in flight" in second.json()["error"]["message"]
            slow.read()
    finally:
        gateway.fake.slow_stream(0)
    assert httpx.post(gateway.base_url + "/v1/chat/completions", headers=bearer(key), json=chat()).status_code == 200


def test_a_client_that_hangs_up_gives_its_slot_back(gateway: GatewayStack) -> None:
    _, key = gateway.create_key(limits={"max_concurrent": 1})
    gateway.fake.slow_stream(0.2)
    try:
        with httpx.stream("POST", gateway.base_url + "/v1/chat/completions", headers=bearer(key),
                          json=chat(stream=True), timeout=30) as response:
            next(response.iter_bytes())
        # the connection is closed mid-stream: relaystack cancels the request and releases its slot
        deadline = time.monotonic() + 10
        status = 0
        while time.monotonic() < deadline:
            status = httpx.post(gateway.base_url + "/v1/embeddings", headers=bearer(key),
                                json={"model": EMBED_MODEL, "input": "x"}).status_code
            if status == 200:
                break
            time.sleep(0.1)
        assert status == 200
    finally:
        gateway.fake.slow_stream(0)


def test_budget_exceeded_is_a_clear_429(gateway: GatewayStack) -> None:
    key_id, key = gateway.create_key(budget={"max_usd": 0.00001, "period": "day"})
    sdk = client(gateway, key)
    sdk.chat.completions.create(**chat())  # 11 prompt + 3 completion tokens: $0.00002 > $0.00001
    with pytest.raises(openai.RateLimitError) as raised:
        sdk.chat.completions.create(**chat())
    error = raised.value.response.json()["error"]
    assert error["code"] == "budget_exceeded" and key_id in error["message"]
    gateway.admin("PATCH", f"/v1/admin/keys/{key_id}", json={"budget": {"max_usd": 10, "period": "day"}})
    assert sdk.chat.completions.create(**chat()).choices


def test_usage_totals_equal_what_the_clients_received_streams_included(gateway: GatewayStack) -> None:
    key_id, key = gateway.create_key(name="usage")
    sdk = client(gateway, key)
    prompt = completion = 0
    for index in range(4):
        answer = sdk.chat.completions.create(**chat(text="count " * index))
        assert answer.usage is not None
        prompt += answer.usage.prompt_tokens
        completion += answer.usage.completion_tokens
    for index in range(3):
        chunks = list(sdk.chat.completions.create(**chat(text="stream " * index), stream=True,
                                                  stream_options={"include_usage": True}))
        usage = [c.usage for c in chunks if c.usage]
        assert len(usage) == 1
        prompt += usage[0].prompt_tokens
        completion += usage[0].completion_tokens
    embedded = sdk.embeddings.create(model=EMBED_MODEL, input=["a b c", "d"])
    prompt += max(0, embedded.usage.prompt_tokens)  # Together may omit it: -1 is "unknown", accounted as 0
    report = gateway.admin("GET", f"/v1/admin/usage?key_id={key_id}&group_by=model").json()
    assert report["total"]["requests"] == 8
    assert report["total"]["prompt_tokens"] == prompt and report["total"]["completion_tokens"] == completion
    by_model = {row["model"]: row for row in report["data"]}
    chat_row = by_model[CHAT_MODEL]
    expected_cost = (chat_row["prompt_tokens"] * 1.0 + chat_row["completion_tokens"] * 3.0) / 1e6
    assert abs(chat_row["cost_usd"] - expected_cost) < 1e-9


def test_a_stream_the_client_asked_no_usage_for_is_still_accounted(gateway: GatewayStack) -> None:
    key_id, key = gateway.create_key(name="unasked")
    chunks = list(client(gateway, key).chat.completions.create(**chat(), stream=True))
    assert not any(c.usage for c in chunks)  # the client did not ask for it and does not see it
    total = gateway.admin("GET", f"/v1/admin/usage?key_id={key_id}").json()["total"]
    assert total["requests"] == 1 and total["prompt_tokens"] > 0 and total["completion_tokens"] > 0


def test_usage_report_groups_and_validates(gateway: GatewayStack) -> None:
    _, key = gateway.create_key(team="reports")
    client(gateway, key).chat.completions.create(**chat())
    by_team = gateway.admin("GET", "/v1/admin/usage?group_by=team").json()["data"]
    assert any(row["team"] == "reports" and row["requests"] == 1 for row in by_team)
    assert gateway.admin("GET", "/v1/admin/usage?group_by=colour").status_code == 400
    assert gateway.admin("GET", "/v1/admin/usage?start=2026-13-01").status_code == 400
    assert gateway.admin("GET", "/v1/admin/usage?start=2000-01-01&end=2000-01-02").json()["data"] == []


def test_keys_cli_create_list_revoke(gateway: GatewayStack) -> None:
    env = {**os.environ, "RELAYSTACK_URL": gateway.base_url, "RELAYSTACK_ADMIN_KEY": ADMIN_KEY}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "relaystack", "keys", *args], capture_output=True, text=True,
                              env=env, timeout=60)

    created = cli("create", "--name", "from-cli", "--owner", "bob", "--rpm", "5", "--model", CHAT_MODEL,
                  "--budget", "3", "--expires-in", "30d", "--meta", "purpose=test")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("rsk-") and ADMIN_KEY not in created.stdout + created.stderr
    assert client(gateway, key).chat.completions.create(**chat()).choices
    listed = cli("list")
    assert listed.returncode == 0 and "from-cli" in listed.stdout and key not in listed.stdout
    key_id = next(line.split()[0] for line in listed.stdout.splitlines() if "from-cli" in line)
    revoked = cli("revoke", key_id)
    assert revoked.returncode == 0 and "revoked" in revoked.stdout
    with pytest.raises(openai.AuthenticationError):
        client(gateway, key).chat.completions.create(**chat())
    wrong = subprocess.run([sys.executable, "-m", "relaystack", "keys", "list"], capture_output=True, text=True,
                           env={**env, "RELAYSTACK_ADMIN_KEY": "wrong-admin-key-123456"}, timeout=60)
    assert wrong.returncode != 0 and "401" in wrong.stderr and "Traceback" not in wrong.stderr


def test_the_messages_api_takes_the_key_in_x_api_key_and_is_limited_like_chat(gateway: GatewayStack) -> None:
    import anthropic

    key_id, key = gateway.create_key(limits={"rpm": 2})
    client = anthropic.Anthropic(base_url=gateway.base_url, api_key=key, max_retries=0)
    message = client.messages.create(model=CHAT_MODEL, max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    assert message.content and message.usage.input_tokens > 0
    with client.messages.stream(model=CHAT_MODEL, max_tokens=16,
                                messages=[{"role": "user", "content": "hi"}]) as stream:
        assert stream.get_final_message().content
    with pytest.raises(anthropic.RateLimitError):
        client.messages.create(model=CHAT_MODEL, max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=gateway.base_url, api_key="wrong", max_retries=0).messages.create(
            model=CHAT_MODEL, max_tokens=16, messages=[{"role": "user", "content": "hi"}])
    total = gateway.admin("GET", f"/v1/admin/usage?key_id={key_id}").json()["total"]
    assert total["requests"] == 2 and total["prompt_tokens"] >= message.usage.input_tokens


async def _concurrent(base_url: str, key: str, count: int, **body: object) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        return list(await asyncio.gather(*(
            http.post("/v1/chat/completions", headers=bearer(key), json=chat(text=f"#{i}", **body))
            for i in range(count)
        )))


def test_200_concurrent_requests_against_rpm_50_admit_exactly_50(gateway: GatewayStack) -> None:
    clear_of_window_edge(60.0, margin_s=10.0)  # exact counts of one fixed window
    _, key = gateway.create_key(limits={"rpm": 50})
    responses = asyncio.run(_concurrent(gateway.base_url, key, 200))
    statuses = [r.status_code for r in responses]
    assert statuses.count(200) == 50 and statuses.count(429) == 150, sorted(set(statuses))
    refused = [r for r in responses if r.status_code == 429]
    assert all(int(r.headers["retry-after"]) >= 1 and r.headers["x-ratelimit-remaining-requests"] == "0"
               for r in refused)
    assert {r.json()["error"]["code"] for r in refused} == {"rate_limit_exceeded"}
    remaining = sorted(int(r.headers["x-ratelimit-remaining-requests"]) for r in responses if r.status_code == 200)
    assert remaining == list(range(50))  # each admitted request counted once, none twice


async def _mixed_load(base_url: str, keys: list[str]) -> list[tuple[str, int, int]]:
    """(key, prompt, completion) as each client received them: JSON answers and streams with usage."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        async def one(index: int) -> tuple[str, int, int]:
            key = keys[index % len(keys)]
            text = "word " * (index % 7)
            if index % 2:
                response = await http.post("/v1/chat/completions", headers=bearer(key), json=chat(text=text))
                usage = response.json()["usage"]
            else:
                async with http.stream("POST", "/v1/chat/completions", headers=bearer(key), json=chat(
                        text=text, stream=True, stream_options={"include_usage": True})) as stream:
                    body = (await stream.aread()).decode()
                chunks = [json.loads(line[6:]) for line in body.splitlines()
                          if line.startswith("data: {")]
                (usage,) = [c["usage"] for c in chunks if c.get("usage")]
            return key, usage["prompt_tokens"], usage["completion_tokens"]

        return list(await asyncio.gather(*(one(i) for i in range(120))))


def test_usage_totals_equal_what_concurrent_clients_received_per_key_model_and_day(gateway: GatewayStack) -> None:
    """Many requests settling at once share usage writes; every one of them is in the totals."""
    created = [gateway.create_key(name=f"concurrent-{i}") for i in range(3)]
    received = asyncio.run(_mixed_load(gateway.base_url, [key for _, key in created]))
    for key_id, key in created:
        mine = [(p, c) for k, p, c in received if k == key]
        report = gateway.admin("GET", f"/v1/admin/usage?key_id={key_id}&group_by=key,model,day").json()
        (row,) = report["data"]
        assert (row["key_id"], row["model"], row["day"]) == (key_id, CHAT_MODEL, report["end"])
        assert row["requests"] == len(mine) == 40
        assert row["prompt_tokens"] == sum(p for p, _ in mine)
        assert row["completion_tokens"] == sum(c for _, c in mine)
        assert row["cost_usd"] == pytest.approx((row["prompt_tokens"] * 1.0 + row["completion_tokens"] * 3.0) / 1e6)
