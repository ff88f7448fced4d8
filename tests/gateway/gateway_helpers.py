"""Helpers for the gateway tests (imported by name: tests/gateway is on sys.path): canary keys, a
fake Together behind a `relaystack run` with server.auth on, and key management."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import httpx

from fakes.fake_together import FakeTogether
from support.server import RunningServer, start_server, write_config
from support.stack import CHAT_MODEL, EMBED_MODEL, issue_config

# canaries: if one of these ever shows up in an answer, a log, a row, a metric or a recording, it leaked
ADMIN_KEY = "admin-canary-" + secrets.token_hex(16)
PROVIDER_KEY = "together-canary-" + secrets.token_hex(16)
PRICES = {CHAT_MODEL: {"input_per_million": 1.0, "output_per_million": 3.0},
          EMBED_MODEL: {"input_per_million": 0.5, "output_per_million": 0.0}}


def gateway_config(fake: FakeTogether, **server: Any) -> dict[str, Any]:
    config = issue_config(api_key=PROVIDER_KEY, base_url=fake.base_url)
    config["server"].update({"auth": {"provider_config": {"type": "virtual_keys"}}, **server})
    config["pricing"] = PRICES
    return config


class GatewayStack:
    def __init__(self, fake: FakeTogether, server: RunningServer, home: Path) -> None:
        self.fake = fake
        self.server = server
        self.home = home

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def admin(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {ADMIN_KEY}", **kwargs.pop("headers", {})}
        return httpx.request(method, self.base_url + path, headers=headers, timeout=30, **kwargs)

    def create_key(self, **fields: Any) -> tuple[str, str]:
        """(key id, key)"""
        response = self.admin("POST", "/v1/admin/keys", json=fields)
        assert response.status_code == 201, response.text
        body = response.json()
        return body["id"], body["key"]


def start_gateway(home: Path, fake: FakeTogether, args: tuple[str, ...] = (), env: dict[str, str] | None = None,
                  storage: dict[str, Any] | None = None, **server: Any) -> GatewayStack:
    """``storage``: the run.yaml's storage section (default: SQLite in ``home``); with a PostgreSQL
    one, the state section takes Redis from the environment (RELAYSTACK_REDIS_URL, _PREFIX)."""
    raw = gateway_config(fake, **server)
    if storage is not None:
        raw["storage"] = storage
        raw["state"] = {"prefix": "${env.RELAYSTACK_REDIS_PREFIX:=relaystack:}"}
    config = write_config(home / "run.yaml", raw)
    running = start_server(config, home=home, args=args, env={"RELAYSTACK_ADMIN_KEY": ADMIN_KEY, **(env or {})})
    return GatewayStack(fake, running, home)


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def chat(model: str = CHAT_MODEL, text: str = "hi", **extra: Any) -> dict[str, Any]:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}
