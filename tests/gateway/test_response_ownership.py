"""Stored responses belong to the key that created them (server.auth on).

Without it any valid key could read, continue, list or delete every other key's conversations by
id; llama-stack's stores are likewise scoped to the authenticated user. Another key's response is
a 404 (never a 403, which would confirm it exists); the admin key sees every one.
"""

from __future__ import annotations

import httpx
from gateway_helpers import CHAT_MODEL, GatewayStack, bearer


def _responses(stack: GatewayStack, key: str, method: str, path: str = "", **kwargs: object) -> httpx.Response:
    return httpx.request(method, f"{stack.base_url}/v1/responses{path}", headers=bearer(key), timeout=30,
                         **kwargs)  # type: ignore[arg-type]


def test_a_keys_responses_are_its_own_and_the_admin_sees_all(gateway: GatewayStack) -> None:
    _, alice = gateway.create_key(name="alice")
    _, bob = gateway.create_key(name="bob")
    created = _responses(gateway, alice, "POST", json={"model": CHAT_MODEL, "input": "my secret plan"})
    assert created.status_code == 200, created.text
    rid = created.json()["id"]

    # alice reads, lists and continues her own
    assert _responses(gateway, alice, "GET", f"/{rid}").status_code == 200
    assert rid in [r["id"] for r in _responses(gateway, alice, "GET", params={"limit": 100}).json()["data"]]
    follow = _responses(gateway, alice, "POST",
                        json={"model": CHAT_MODEL, "input": "and?", "previous_response_id": rid})
    assert follow.status_code == 200, follow.text

    # bob cannot see, list, continue, cancel or delete it: not found, as if it did not exist
    for method, path in (("GET", f"/{rid}"), ("GET", f"/{rid}/input_items"), ("POST", f"/{rid}/cancel"),
                         ("DELETE", f"/{rid}")):
        answer = _responses(gateway, bob, method, path)
        assert answer.status_code == 404 and answer.json()["error"]["code"] == "response_not_found", (path, answer.text)
    assert rid not in [r["id"] for r in _responses(gateway, bob, "GET", params={"limit": 100}).json()["data"]]
    upstream_calls = len(gateway.fake.requests)
    stolen = _responses(gateway, bob, "POST", json={"model": CHAT_MODEL, "input": "go on", "previous_response_id": rid})
    assert stolen.status_code == 400 and stolen.json()["error"]["code"] == "previous_response_not_found"
    assert len(gateway.fake.requests) == upstream_calls  # alice's conversation never went upstream for bob

    # the admin key sees every key's responses, and alice's is still there after bob's attempts
    listed = gateway.admin("GET", "/v1/responses", params={"limit": 100}).json()["data"]
    assert {rid, follow.json()["id"]} <= {r["id"] for r in listed}
    assert _responses(gateway, alice, "DELETE", f"/{rid}").json()["deleted"] is True
