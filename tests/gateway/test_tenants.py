"""Two tenants, each with its own virtual key and its own provider key (X-LlamaStack-Provider-Data),
interleaved over 1,000 concurrent streamed requests: each upstream call carries its own tenant's key.

llama-stack leaked one tenant's provider credentials into another's requests through context
variables (#3924, #5227); relaystack passes them explicitly with each call.
"""

from __future__ import annotations

import asyncio
import json
import secrets

import httpx
import pytest
from gateway_helpers import PROVIDER_KEY, GatewayStack, bearer, chat

from fakes.fake_together import DEFAULT_API_KEY

TENANTS = {name: "together-" + name + "-" + secrets.token_hex(12) for name in ("alpha", "beta")}


async def _one(client: httpx.AsyncClient, tenant: str, virtual_key: str, index: int) -> tuple[str, int, str]:
    headers = {**bearer(virtual_key), "X-LlamaStack-Provider-Data": json.dumps({"together_api_key": TENANTS[tenant]})}
    async with client.stream("POST", "/v1/chat/completions", headers=headers,
                             json=chat(text=f"{tenant}:{index}", stream=True)) as response:
        body = (await response.aread()).decode()
    return tenant, response.status_code, body


async def _interleaved(base_url: str, virtual_keys: dict[str, str], total: int) -> list[tuple[str, int, str]]:
    limits = httpx.Limits(max_connections=total, max_keepalive_connections=total)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as client:
        names = list(TENANTS)
        return await asyncio.gather(*(
            _one(client, names[i % 2], virtual_keys[names[i % 2]], i) for i in range(total)
        ))


@pytest.mark.slow
def test_1000_interleaved_streams_never_carry_the_other_tenants_key(gateway: GatewayStack) -> None:
    gateway.fake.accept_keys(*TENANTS.values())
    gateway.fake.reset()
    try:
        virtual_keys = {name: gateway.create_key(name=name)[1] for name in TENANTS}
        results = asyncio.run(_interleaved(gateway.base_url, virtual_keys, 1000))
    finally:
        gateway.fake.accept_keys(PROVIDER_KEY, DEFAULT_API_KEY)
    assert [status for _, status, _ in results].count(200) == 1000
    for _, _, body in results:
        assert "data: [DONE]" in body
        assert not any(key in body for key in TENANTS.values())  # no key is ever echoed to a client
    upstream = gateway.fake.requests_to("/v1/chat/completions")
    assert len(upstream) == 1000
    for request in upstream:
        tenant = request.json["messages"][0]["content"].split(":")[0]
        assert request.api_key == TENANTS[tenant], f"{tenant}'s request went upstream with another key"
