"""The registry while its PostgreSQL store is unreachable: ``GET /v1/models`` (``models_fresh``)
serves the models known so far instead of a 503, even when another instance registered one
that could not be read yet; a model it does not know is the store's 503, not a false 404."""

from __future__ import annotations

import pytest

from relaystack.errors import ModelNotFoundError
from relaystack.registry import Registry
from relaystack.storage.postgres import PgSettings, PostgresStore, StoreUnavailableError
from support.tcp_proxy import TcpProxy
from support.waiting import eventually


def settings(dsn: str) -> PgSettings:
    return PgSettings(dsn, pool_size=2, probe_interval_s=0.1, connect_timeout_s=1.0, command_timeout_s=2.0)


def model(identifier: str) -> dict[str, object]:
    return {"identifier": identifier, "provider_id": "p", "provider_resource_id": identifier, "model_type": "llm"}


async def test_known_models_are_served_while_the_store_is_down(pg_dsn: str) -> None:
    proxy = TcpProxy("127.0.0.1", int(pg_dsn.split(":")[-1].split("/")[0]))
    await proxy.start()
    other = PostgresStore(settings(pg_dsn))  # another instance, on PostgreSQL directly
    mine = PostgresStore(settings(pg_dsn.replace(f":{proxy.target[1]}/", f":{proxy.port}/")))
    await other.start()
    await mine.start()
    registry = Registry([], mine)
    try:
        await other.put_model(model("p/first"))
        await registry.start()
        assert [m.identifier for m in await registry.models_fresh()] == ["p/first"]

        before = mine.models_version()
        await other.put_model(model("p/second"))  # this instance's monitor sees the new version...
        assert await eventually(lambda: mine.models_version() != before, 10)
        await proxy.cut()  # ...but PostgreSQL is gone before the registry could read the models
        assert await eventually(lambda: not mine.health().ok, 10)

        assert [m.identifier for m in await registry.models_fresh()] == ["p/first"]  # the cached list
        assert (await registry.get_fresh("p/first")).identifier == "p/first"
        with pytest.raises(StoreUnavailableError):  # maybe registered elsewhere: not a 404
            await registry.get_fresh("p/second")
        with pytest.raises(StoreUnavailableError):  # a request's model miss still needs the store
            await registry.resolve_fresh("p/second", "llm")

        await proxy.start()
        assert await eventually(lambda: mine.health().ok, 15)
        assert [m.identifier for m in await registry.models_fresh()] == ["p/first", "p/second"]
        with pytest.raises(ModelNotFoundError):
            await registry.get_fresh("p/never")
    finally:
        await registry.stop()
        await mine.stop()
        await other.stop()
        await proxy.cut()
