"""The worker processes of ``--workers N`` list each provider's models once between them
(``relaystack.shared_discovery``): here several registries stand for the workers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from relaystack.errors import UpstreamConnectionError
from relaystack.providers.base import ModelEntry, Provider
from relaystack.registry import Registry
from relaystack.shared_discovery import SharedDiscovery


class CountingProvider(Provider):
    """Lists two models (or fails, or lists nothing) and counts how often it was asked."""

    def __init__(self, provider_id: str, outcome: str = "ok") -> None:
        super().__init__(provider_id)
        self.outcome = outcome
        self.calls = 0
        self.adopted: list[str] | None = None

    async def list_models(self) -> list[ModelEntry] | None:
        self.calls += 1
        await asyncio.sleep(0.05)  # the other workers arrive while this one lists
        if self.outcome == "down":
            raise UpstreamConnectionError("cannot connect to 127.0.0.1:9 (connection refused)")
        if self.outcome == "nothing":
            return None
        return [ModelEntry(f"{self.provider_id}/chat", self.provider_id, "chat", "llm", {}, "listed"),
                ModelEntry(f"{self.provider_id}/embed", self.provider_id, "embed", "embedding",
                           {"embedding_dimension": 8}, "listed")]

    def listing_adopted(self, entries: list[ModelEntry]) -> None:
        self.adopted = sorted(e.provider_resource_id for e in entries)


def _worker(outcomes: dict[str, str]) -> tuple[Registry, dict[str, CountingProvider]]:
    providers = {pid: CountingProvider(pid, outcome) for pid, outcome in outcomes.items()}
    return Registry(providers.values()), providers


async def test_workers_list_once_and_all_serve_the_listing(tmp_path: Path) -> None:
    shared = SharedDiscovery(tmp_path / "discovery.json")
    workers = [_worker({"up": "ok", "down": "down", "keyless": "nothing"}) for _ in range(3)]
    await asyncio.gather(*(registry.start(shared) for registry, _ in workers))
    for pid in ("up", "down", "keyless"):
        assert sum(providers[pid].calls for _, providers in workers) == 1, pid
    for registry, _ in workers:
        models = {m.identifier: m for m in registry.models()}
        assert sorted(models) == ["up/chat", "up/embed"]
        assert models["up/embed"].model_type == "embedding"
        assert models["up/embed"].metadata == {"embedding_dimension": 8}
        assert models["up/chat"].source == "listed"
        # /v1/health shows the same discovery outcomes in every worker
        assert registry.health["up"].to_dict()["last_discovery"]["models"] == 2
        assert registry.health["down"].state == "unreachable"
        assert registry.health["keyless"].state == "unknown"
    listers = [providers for _, providers in workers if providers["up"].calls]
    readers = [providers for _, providers in workers if not providers["up"].calls]
    assert len(listers) == 1 and len(readers) == 2
    assert all(p["up"].adopted == ["chat", "embed"] for p in readers)
    # a provider that listed nothing is left as it was: it may route `keyless/x` unlisted
    assert all(p["keyless"].adopted is None for p in readers)


async def test_an_unreadable_file_means_listing_again(tmp_path: Path) -> None:
    shared = SharedDiscovery(tmp_path / "discovery.json")
    shared.path.write_text("{not json")
    registry, providers = _worker({"up": "ok"})
    await registry.start(shared)
    assert providers["up"].calls == 1
    assert [m.identifier for m in registry.models()] == ["up/chat", "up/embed"]


async def test_without_sharing_each_registry_lists() -> None:
    registry, providers = _worker({"up": "ok"})
    await registry.start()
    assert providers["up"].calls == 1
