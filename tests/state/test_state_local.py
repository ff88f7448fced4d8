"""The sliding window (on LocalState with a fake clock) and the choice of implementation."""

from __future__ import annotations

import pytest

from relaystack.config import StateConfig
from relaystack.errors import ConfigError
from relaystack.state import LocalState, open_state
from relaystack.state.redis import RedisState
from relaystack.state.window import retry_after


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def test_a_window_boundary_does_not_double_the_limit() -> None:
    clock = Clock(6000.0 + 50)  # 50 s into a 60 s window
    state = LocalState(clock=clock)
    assert sum([(await state.take("k", 1, limit=10, window_s=60)).allowed for _ in range(10)]) == 10
    clock.now = 6060.0 + 1  # 1 s into the next window: the previous one still weighs 59/60
    assert not (await state.take("k", 1, limit=10, window_s=60)).allowed
    clock.now = 6060.0 + 30  # half-way: half of the previous window's 10 still counts
    assert sum([(await state.take("k", 1, limit=10, window_s=60)).allowed for _ in range(10)]) == 5
    clock.now = 6180.0 + 1  # two windows later: everything has expired
    assert await state.usage("k", window_s=60) == 0


async def test_retry_after_is_when_the_amount_fits() -> None:
    clock = Clock(6060.0 + 30)
    state = LocalState(clock=clock)
    await state.add("k", 10, window_s=60)
    refused = await state.take("k", 1, limit=10, window_s=60)
    assert not refused.allowed
    clock.now += refused.retry_after_s  # the current window ends, then its count decays
    assert (await state.take("k", 1, limit=10, window_s=60)).allowed


def test_retry_after_from_the_previous_windows_decay() -> None:
    # prev 10 weighs 5 at half-way, cur 4: 9 + 2 > 10 by 1 -> 1 / (10 / 60) = 6 s
    assert retry_after(10, 4, 30, 60, 2, 10) == pytest.approx(6.0)


def test_one_process_without_redis_gets_local_state() -> None:
    assert isinstance(open_state(StateConfig(), shared_by=None, needed_by=["rate limits"], env={}), LocalState)


def test_several_processes_without_redis_start_while_nothing_needs_shared_state() -> None:
    assert isinstance(open_state(StateConfig(), shared_by="storage.backend: postgres", env={}), LocalState)


def test_several_processes_without_redis_refuse_a_feature_that_needs_it() -> None:
    with pytest.raises(ConfigError) as caught:
        open_state(StateConfig(), shared_by="storage.backend: postgres", needed_by=["rate limits"], env={})
    message = str(caught.value)
    assert "rate limits" in message and "storage.backend: postgres" in message
    assert "state.redis_url" in message and "RELAYSTACK_REDIS_URL" in message


def test_a_redis_url_from_config_or_environment_gives_redis_state() -> None:
    from_env = open_state(StateConfig(), shared_by="2 worker processes", needed_by=["rate limits"],
                          env={"RELAYSTACK_REDIS_URL": "redis://127.0.0.1:6379/0"})
    assert isinstance(from_env, RedisState)
    from_config = open_state(StateConfig(redis_url="redis://h:6379/1", prefix="p:"), shared_by=None, env={})
    assert isinstance(from_config, RedisState) and from_config.prefix == "p:"


def test_the_app_builds_the_postgres_store_and_state_from_config() -> None:
    from relaystack.api.app import create_app
    from relaystack.config import parse_config
    from relaystack.storage.postgres import PostgresStore

    raw = {"storage": {"backend": "postgres"}, "providers": {"inference": []}}
    with pytest.raises(ConfigError, match="RELAYSTACK_POSTGRES_DSN"):
        create_app(parse_config(raw), environ={})
    app = create_app(parse_config(raw), environ={"RELAYSTACK_POSTGRES_DSN": "postgresql://u:pw@db:5432/r"})
    assert isinstance(app.store, PostgresStore)
    assert app.store.health().to_dict() == {"backend": "postgres", "status": "OK", "database": "db:5432/r"}
    assert isinstance(app.state, LocalState)
    redis_app = create_app(parse_config({**raw, "state": {"redis_url": "redis://cache:6379/0"}}),
                           environ={"RELAYSTACK_POSTGRES_DSN": "postgresql://db/r"})
    assert isinstance(redis_app.state, RedisState)


def _two_deployments() -> dict[str, object]:
    providers = [{"provider_id": name, "provider_type": "remote::openai-compat",
                  "config": {"base_url": "http://127.0.0.1:9"}} for name in ("a", "b")]
    return {"providers": {"inference": providers}, "models": [{"model_id": "m", "model_type": "llm", "deployments": [
        {"provider_id": "a", "provider_model_id": "x"}, {"provider_id": "b", "provider_model_id": "x"}]}]}


@pytest.mark.parametrize(("extra", "named"), [
    ({"server": {"auth": {}}}, "rate limits (server.auth/server.quota)"),
    ({"server": {"quota": {"anonymous_max_requests": 5}}}, "rate limits"),
    (_two_deployments(), "deployment cooldowns"),
])
def test_a_postgres_deployment_with_a_feature_to_share_refuses_to_start_without_redis(
    extra: dict[str, object], named: str,
) -> None:
    from relaystack.api.app import create_app
    from relaystack.config import parse_config

    keys = {"RELAYSTACK_ADMIN_KEY": "a" * 32, "RELAYSTACK_KEY_SECRET": "s" * 32}
    raw = {"providers": {"inference": []}, **extra, "storage": {"backend": "postgres"}}
    with pytest.raises(ConfigError) as caught:
        create_app(parse_config(raw, env={}), environ={**keys, "RELAYSTACK_POSTGRES_DSN": "postgresql://db/r"})
    message = str(caught.value)
    assert named in message and "storage.backend: postgres" in message and "state.redis_url" in message
    # with Redis it starts, limits on Redis and cooldowns shared
    app = create_app(parse_config(raw, env={}), environ={**keys, "RELAYSTACK_POSTGRES_DSN": "postgresql://db/r",
                                                          "RELAYSTACK_REDIS_URL": "redis://cache:6379/0"})
    assert isinstance(app.state, RedisState)
    if "deployments" in str(extra):
        from relaystack.router.cooldown_shared import SharedCooldowns

        assert isinstance(app.router.state, SharedCooldowns)
    else:
        from relaystack.gateway.counters_redis import RedisCounters

        assert isinstance(app.gateway.counters, RedisCounters)


def test_server_auth_on_postgres_needs_the_shared_key_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from relaystack.api.app import create_app
    from relaystack.config import parse_config

    monkeypatch.setenv("RELAYSTACK_KEY_SECRET", "s" * 32)  # the process's: not the environment the app was given
    raw = {"providers": {"inference": []}, "server": {"auth": {}}, "storage": {"backend": "postgres"}}
    with pytest.raises(ConfigError) as caught:
        create_app(parse_config(raw, env={}), environ={"RELAYSTACK_ADMIN_KEY": "a" * 32,
                                                        "RELAYSTACK_POSTGRES_DSN": "postgresql://u:pw@db/r",
                                                        "RELAYSTACK_REDIS_URL": "redis://cache:6379/0"})
    assert "RELAYSTACK_KEY_SECRET" in str(caught.value) and "pw" not in str(caught.value)


def test_workers_on_sqlite_keep_cooldowns_per_worker_and_say_so(
    tmp_path: object, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from relaystack.api.app import create_app
    from relaystack.config import parse_config
    from relaystack.router.cooldown import InProcessCooldowns

    monkeypatch.setenv("RELAYSTACK_HOME", str(tmp_path))
    app = create_app(parse_config(_two_deployments(), env={}), environ={}, workers=2)
    assert isinstance(app.state, LocalState) and isinstance(app.router.state, InProcessCooldowns)
    assert any("cools failing deployments down on its own" in r.message for r in caplog.records)
