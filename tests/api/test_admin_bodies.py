"""The Starlette routes that take a JSON body (registering a model, the admin API's keys) read it
with one reader: a malformed body is the same 400, naming where it went wrong or what was sent,
whichever route it was sent to."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import httpx
import pytest

from relaystack.api.app import create_app
from relaystack.config import parse_config
from relaystack.errors import InvalidRequestError
from relaystack.json_routes import json_object

ADMIN = "admin-" + secrets.token_hex(16)
MALFORMED = [(b"{not json", "is not valid JSON: unexpected character, expected a string key (at byte 1)"),
             (b"[1, 2]", "must be a JSON object, not list"),
             (b'"text"', "must be a JSON object, not str")]


@pytest.mark.parametrize(("raw", "said"), MALFORMED)
def test_a_malformed_body_is_a_400_that_says_what_is_wrong(raw: bytes, said: str) -> None:
    with pytest.raises(InvalidRequestError, match=re.escape(said)) as caught:
        json_object(raw)
    assert caught.value.status_code == 400


def test_an_empty_body_is_an_empty_object() -> None:
    assert json_object(b"") == {} and json_object(b'{"a": 1}') == {"a": 1}


async def test_every_json_route_answers_a_malformed_body_alike(tmp_path: Path) -> None:
    raw = {"providers": {"inference": []}, "storage": {"db_path": str(tmp_path / "relaystack.db")},
           "server": {"auth": {}, "access_log": False}}
    app = create_app(parse_config(raw, env={}), environ={"RELAYSTACK_ADMIN_KEY": ADMIN})
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": f"Bearer {ADMIN}", "content-type": "application/json"}
        async with httpx.AsyncClient(transport=transport, base_url="http://relaystack.test", headers=headers) as c:
            key_id = (await c.post("/v1/admin/keys", json={"owner": "ada"})).json()["id"]
            for body, said in MALFORMED:
                answers = [await c.post("/v1/models", content=body), await c.post("/v1/admin/keys", content=body),
                           await c.patch(f"/v1/admin/keys/{key_id}", content=body)]
                assert [a.status_code for a in answers] == [400, 400, 400]
                errors = [a.json()["error"] for a in answers]
                assert said in errors[0]["message"] and errors[0] == errors[1] == errors[2], errors
    finally:
        await app.shutdown()
