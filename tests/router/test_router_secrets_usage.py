"""What the router carries between the API layer and a provider beside the body: the call's
secrets into the request's redactor (a token obtained during the call included), the gateway's
wish for stream usage, and the stream's usage back out through the routed stream."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from relaystack.context import RequestContext
from relaystack.errors import RelaystackError
from relaystack.providers.base import CallContext, Reply, StreamReply
from router.scripted import Rig, Scripted, drain, event, fail, two_deployments

TOKEN = "exchanged-token-0123456789abcdef"
USAGE = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
ONE_DEPLOYMENT = {"models": [{"model_id": "m", "provider_id": "primary", "provider_model_id": "up-m",
                              "model_type": "llm"}]}


class Exchanging(Scripted):
    """A provider whose auth obtains a token during its first call (an IAM exchange, say)."""

    token: str | None = None

    async def chat_completion(self, body: dict[str, Any], call: CallContext) -> Reply:
        self.token = f"{TOKEN}-{self.provider_id}"
        return await super().chat_completion(body, call)

    def secrets(self, call: CallContext | None = None) -> tuple[str, ...]:
        return (self.token,) if self.token else ()


def with_usage() -> Any:
    async def step(provider: Scripted, call: CallContext) -> Reply:
        async def blocks() -> AsyncIterator[bytes]:
            yield event(provider.provider_id, 0)
            yield event(provider.provider_id, 1, finish=True)
        return StreamReply(blocks(), final_usage=lambda: USAGE)
    return step


@pytest.mark.parametrize("config", [ONE_DEPLOYMENT, two_deployments()], ids=["plain", "routed"])
async def test_a_token_obtained_during_the_call_reaches_the_request_redactor(config: dict[str, Any]) -> None:
    primary, secondary = Exchanging("primary"), Exchanging("secondary")
    rig = Rig(config, primary, secondary)
    _reply, ctx = await rig.send()
    assert f"{TOKEN}-primary" in ctx.redactor.secrets
    assert ctx.redactor.text(f"echo {TOKEN}-primary") == "echo [REDACTED]"


async def test_every_failed_attempts_token_is_in_the_redactor_too() -> None:
    primary, secondary = Exchanging("primary", default=fail(503)), Exchanging("secondary", default=fail(502))
    rig = Rig(two_deployments(retries=0), primary, secondary)
    ctx = RequestContext("chat")
    with pytest.raises(RelaystackError):
        await rig.router.send("chat", {"model": "m", "messages": []}, ctx)
    assert {f"{TOKEN}-primary", f"{TOKEN}-secondary"} <= ctx.redactor.secrets


@pytest.mark.parametrize("config", [ONE_DEPLOYMENT, two_deployments()], ids=["plain", "routed"])
async def test_usage_wanted_reaches_the_call_and_stream_usage_comes_back(config: dict[str, Any]) -> None:
    primary = Scripted("primary", with_usage())
    rig = Rig(config, primary, Scripted("secondary"))
    reply, _ctx = await rig.send(stream=True, usage_wanted=True)
    assert primary.calls[-1].usage_wanted is True
    assert isinstance(reply, StreamReply)
    assert len(await drain(reply)) == 2
    assert reply.usage == USAGE


def with_stored_form(forgone: list[bool]) -> Any:
    async def step(provider: Scripted, call: CallContext) -> Reply:
        async def blocks() -> AsyncIterator[bytes]:
            yield event(provider.provider_id, 0)
            yield event(provider.provider_id, 1, finish=True)
        return StreamReply(blocks(), stored_form=lambda hidden: b"packed" + hidden,
                           forgo_stored=lambda: forgone.append(True), ended=lambda: True)
    return step


@pytest.mark.parametrize("config", [ONE_DEPLOYMENT, two_deployments()], ids=["plain", "routed"])
async def test_a_routed_stream_keeps_its_stored_form_and_end_signal(config: dict[str, Any]) -> None:
    """The router's stream guard passes the blocks on unchanged, so the provider's stored form (its
    packed parts) and its end signal still hold: a routed stream is stored packed, as a plain one."""
    forgone: list[bool] = []
    rig = Rig(config, Scripted("primary", with_stored_form(forgone)), Scripted("secondary"))
    reply, _ctx = await rig.send(stream=True)
    assert isinstance(reply, StreamReply)
    assert len(await drain(reply)) == 2
    assert reply.stored_form is not None and reply.stored_form(b"+h") == b"packed+h"
    assert reply.ended is not None and reply.ended()
    assert reply.forgo_stored is not None
    reply.forgo_stored()
    assert forgone == [True]
