"""An app built for a given environment (``create_app(environ=...)``) takes its admin key and key
secret from that environment, never from the process's: a test, an embedding host or a second app
in one process each get the gateway they described."""

from __future__ import annotations

import secrets
from pathlib import Path

import httpx
import pytest

from relaystack.api.app import create_app
from relaystack.config import parse_config
from relaystack.errors import ConfigError
from relaystack.gateway.keys import SECRET_FILE, hash_key

GIVEN_ADMIN = "given-admin-" + secrets.token_hex(16)
GIVEN_SECRET = "given-secret-" + secrets.token_hex(16)
PROCESS_ADMIN = "process-admin-" + secrets.token_hex(16)


def _raw(db_path: Path) -> dict[str, object]:
    return {"providers": {"inference": []}, "storage": {"db_path": str(db_path)},
            "server": {"auth": {"provider_config": {"type": "virtual_keys"}}, "access_log": False}}


async def test_the_gateway_uses_the_environment_the_app_was_built_with(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELAYSTACK_ADMIN_KEY", PROCESS_ADMIN)
    monkeypatch.delenv("RELAYSTACK_KEY_SECRET", raising=False)
    environ = {"RELAYSTACK_ADMIN_KEY": GIVEN_ADMIN, "RELAYSTACK_KEY_SECRET": GIVEN_SECRET}
    app = create_app(parse_config(_raw(tmp_path / "relaystack.db"), env={}), environ=environ)
    await app.startup()
    try:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://relaystack.test") as client:
            refused = await client.get("/v1/admin/keys", headers={"Authorization": f"Bearer {PROCESS_ADMIN}"})
            assert refused.status_code == 401, refused.text
            made = await client.post("/v1/admin/keys", json={"owner": "ada"},
                                     headers={"Authorization": f"Bearer {GIVEN_ADMIN}"})
            assert made.status_code == 201, made.text
            stored = await app.store.get_key(made.json()["id"])  # type: ignore[union-attr]
    finally:
        await app.shutdown()
    assert stored is not None and stored["secret_hash"] == hash_key(GIVEN_SECRET.encode(), made.json()["key"])
    assert not (tmp_path / SECRET_FILE).exists()  # the given secret, not one generated beside the database


def test_without_an_admin_key_in_the_given_environment_start_up_names_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RELAYSTACK_ADMIN_KEY", PROCESS_ADMIN)
    with pytest.raises(ConfigError, match="RELAYSTACK_ADMIN_KEY"):
        create_app(parse_config(_raw(tmp_path / "relaystack.db"), env={}), environ={})


async def test_the_store_lives_under_the_given_environments_relaystack_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    process_home, given_home = tmp_path / "process", tmp_path / "given"
    monkeypatch.setenv("RELAYSTACK_HOME", str(process_home))
    app = create_app(parse_config({"providers": {"inference": []}, "server": {"access_log": False}}, env={}),
                     environ={"RELAYSTACK_HOME": str(given_home)})
    await app.startup()
    await app.shutdown()
    assert (given_home / "relaystack.db").exists()
    assert not process_home.exists()
