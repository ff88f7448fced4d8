"""The Responses API on PostgreSQL, end to end: two ``relaystack run`` instances on one database in
front of the fake Together, driven with the openai SDK. A response stored through one is listed,
retrieved, continued (``previous_response_id``), paged (``input_items``) and deleted through the
other. One instance is configured with ``storage.dsn``, the other with llama-stack's
``storage.backends`` + ``storage.stores`` (host, port, db, user, password): both reach the same
database, and the password shows in no log line nor health output. Skipped with a reason where
PostgreSQL is unreachable."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import openai
import pytest
from openai import OpenAI

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from support.backends import throwaway_database
from support.server import RunningServer, free_port, start_server, write_config
from support.stack import CHAT_MODEL, issue_config

# PostgreSQL here trusts 127.0.0.1, so a password is never asked for; relaystack still carries it
PASSWORD = "Sw0rdfish/?#@:%x"


@dataclass
class Pair:
    one: RunningServer  # storage.dsn
    two: RunningServer  # llama-stack's storage.backends
    fake: FakeTogether
    database: str

    def client(self, server: RunningServer) -> OpenAI:
        return OpenAI(base_url=f"{server.base_url}/v1", api_key="unused", max_retries=0, timeout=30)


def llama_stack_storage() -> dict[str, Any]:
    postgres = {"type": "sql_postgres", "host": "${env.POSTGRES_HOST:=localhost}", "port": "${env.POSTGRES_PORT:=5432}",
                "db": "${env.POSTGRES_DB:=llamastack}", "user": "${env.POSTGRES_USER:=llamastack}",
                "password": "${env.POSTGRES_PASSWORD:=llamastack}"}
    return {"backends": {"kv_default": {**postgres, "type": "kv_postgres", "table_name": "llamastack_kvstore"},
                         "sql_default": postgres},
            "stores": {"metadata": {"backend": "kv_default", "namespace": "registry"},
                       "inference": {"backend": "sql_default", "table_name": "inference_store"}}}


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    home = tmp_path_factory.mktemp("responses-pg")
    fake = FakeTogether((DEFAULT_API_KEY,)).start()
    upstream = {"TOGETHER_API_KEY": DEFAULT_API_KEY, "TOGETHER_BASE_URL": fake.base_url}
    try:
        with throwaway_database() as dsn:
            parts = urlsplit(dsn)
            with_password = parts._replace(netloc=f"{parts.username}:{quote(PASSWORD, safe='')}@"
                                                  f"{parts.hostname}:{parts.port or 5432}").geturl()
            first = {**issue_config(), "storage": {"backend": "postgres", "dsn": "${env.RELAYSTACK_POSTGRES_DSN}"}}
            second = {**issue_config(), "storage": llama_stack_storage()}
            one = start_server(write_config(home / "one.yaml", first), home=home / "one",
                               env={**upstream, "RELAYSTACK_POSTGRES_DSN": with_password})
            try:
                two = start_server(write_config(home / "two.yaml", second), home=home / "two", env={
                    **upstream, "POSTGRES_HOST": parts.hostname or "127.0.0.1",
                    "POSTGRES_PORT": str(parts.port or 5432),
                    "POSTGRES_DB": parts.path.lstrip("/"), "POSTGRES_USER": parts.username or "postgres",
                    "POSTGRES_PASSWORD": PASSWORD})
                try:
                    yield Pair(one, two, fake, parts.path.lstrip("/"))
                finally:
                    two.stop()
            finally:
                one.stop()
    finally:
        fake.stop()


def test_a_response_stored_through_one_instance_is_continued_paged_and_deleted_through_the_other(pair: Pair) -> None:
    one, two = pair.client(pair.one), pair.client(pair.two)
    first = one.responses.create(model=CHAT_MODEL, input="My name is Ada", instructions="Be brief.")
    assert first.status == "completed" and first.output_text == "You said: My name is Ada"
    assert two.responses.retrieve(first.id).output_text == first.output_text

    second = two.responses.create(model=CHAT_MODEL, input="What is my name?", previous_response_id=first.id)
    assert second.previous_response_id == first.id
    sent = pair.fake.requests_to("/v1/chat/completions")[-1].json
    assert sent["messages"] == [  # the conversation as instance one stored it, without its instructions
        {"role": "user", "content": "My name is Ada"},
        {"role": "assistant", "content": "You said: My name is Ada"},
        {"role": "user", "content": "What is my name?"},
    ]

    items = one.responses.input_items.list(second.id, order="asc").data
    assert [(i.type, getattr(i, "role", None)) for i in items] == [
        ("message", "user"), ("message", "assistant"), ("message", "user")]
    page = one.responses.input_items.list(second.id, limit=2)
    assert [i.role for i in page.data] == ["user", "assistant"] and page.has_more is True
    rest = one.responses.input_items.list(second.id, limit=2, after=page.data[-1].id)
    assert [i.role for i in rest.data] == ["user"] and rest.has_more is False

    listed = httpx.get(f"{pair.one.base_url}/v1/responses", params={"limit": 100}, timeout=30).json()["data"]
    ids = [r["id"] for r in listed]
    assert ids.index(second.id) < ids.index(first.id)  # newest first, whichever instance stored it

    assert one.responses.delete(second.id) is None
    with pytest.raises(openai.NotFoundError):
        two.responses.retrieve(second.id)
    with pytest.raises(openai.NotFoundError):
        two.responses.delete(second.id)
    with pytest.raises(openai.BadRequestError) as gone:
        two.responses.create(model=CHAT_MODEL, input="and now?", previous_response_id=second.id)
    assert gone.value.code == "previous_response_not_found"


def test_a_streamed_response_is_committed_before_its_last_event(pair: Pair) -> None:
    one, two = pair.client(pair.one), pair.client(pair.two)
    events = list(one.responses.create(model=CHAT_MODEL, input="Stream and keep", stream=True))
    assert events[-1].type == "response.completed"
    done = events[-1].response
    assert two.responses.retrieve(done.id).output_text == done.output_text == "You said: Stream and keep"
    continued = two.responses.create(model=CHAT_MODEL, input="Again", previous_response_id=done.id, stream=True)
    last = list(continued)[-1]
    assert last.type == "response.completed"
    assert [i.role for i in one.responses.input_items.list(last.response.id, order="asc").data] == [
        "user", "assistant", "user"]


def test_the_password_shows_in_no_log_nor_health(pair: Pair) -> None:
    for server in (pair.one, pair.two):
        health = httpx.get(f"{server.base_url}/v1/health", timeout=10)
        store = health.json()["store"]
        assert store["backend"] == "postgres" and store["status"] == "OK"
        assert store["database"].endswith(f"/{pair.database}")
        for text in (health.text, server.log()):
            assert PASSWORD not in text and quote(PASSWORD, safe="") not in text and "Sw0rdfish" not in text
    assert "using llama-stack's storage.backends.sql_default: PostgreSQL store" in pair.two.log()


def test_a_malformed_dsn_stops_the_server_with_the_fix_not_the_password(tmp_path: Path) -> None:
    config = write_config(tmp_path / "run.yaml", {**issue_config(), "storage": {"backend": "postgres"}})
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYSTACK_")}
    env.update({"RELAYSTACK_HOME": str(tmp_path), "RELAYSTACK_POSTGRES_DSN": f"postgresql://u:{PASSWORD}@db/relay"})
    done = subprocess.run([sys.executable, "-m", "relaystack", "run", str(config), "--port", str(free_port())],
                          capture_output=True, text=True, env=env, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "RELAYSTACK_POSTGRES_DSN cannot be parsed" in output and "percent-encode" in output
    assert "Sw0rdfish" not in output and "Traceback" not in output
