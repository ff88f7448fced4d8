"""One model discovery per start-up, however many worker processes serve (``--workers N``).

``relaystack run --workers N`` starts N processes that each build the app. Without sharing,
each would ask every upstream for its models at start-up: N listing calls (and N warnings when
an upstream is down). Instead the workers share one file, created fresh for each start-up by
the parent process (``server/runner.py``, in its temporary folder, removed at exit):

- a worker takes an exclusive lock on ``<file>.lock`` (``fcntl.flock``), then
- if the file exists, it adopts what it says (each provider's listed models, or that it listed
  nothing, and the discovery's outcome for ``/v1/health``); otherwise it discovers, as a single
  process does, and writes the file (atomically: a temporary file renamed);
- and releases the lock. The others waited on the lock, so they find the file.

A worker that dies while discovering releases the lock with its process, and the next one
discovers. Periodic refreshes (``refresh_interval_s``) stay per worker: the file only holds the
start-up's discovery. One process (``--workers 1``) shares nothing and uses no file.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson

from relaystack.health import HealthBook
from relaystack.providers.base import ModelEntry

__all__ = ["SharedDiscovery"]

log = logging.getLogger("relaystack.registry")


class SharedDiscovery:
    """The start-up's discovery file, shared by the worker processes of one ``relaystack run``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[None]:
        """Hold the lock (waiting for the worker that holds it, off the event loop)."""
        fd = os.open(f"{self.path}.lock", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            await asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def read(self, health: HealthBook) -> dict[str, dict[str, ModelEntry]] | None:
        """The models the first worker listed, by provider id (its discovery outcomes go into
        ``health``); None when nothing was written yet, or the file cannot be read: then this
        worker discovers, as a single process would."""
        try:
            data = orjson.loads(self.path.read_bytes())
            listed = {provider_id: {row["identifier"]: _entry(row) for row in outcome["models"]}
                      for provider_id, outcome in data.items() if outcome["models"] is not None}
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("The shared start-up discovery %s cannot be read (%s): listing the models again.",
                        self.path, exc)
            return None
        for provider_id, outcome in data.items():
            if outcome.get("discovery") is not None:
                health[provider_id].adopt_discovery(outcome["discovery"])
        return listed

    def write(self, provider_ids: list[str], listed: dict[str, dict[str, ModelEntry]], health: HealthBook) -> None:
        """Share this worker's discovery: per provider, its listed models (None: it listed
        nothing, e.g. no key) and the outcome ``/v1/health`` shows."""
        outcomes = {}
        for provider_id in provider_ids:
            models = listed.get(provider_id)
            discovery = health[provider_id].discovery
            outcomes[provider_id] = {
                "models": None if models is None else [_row(entry) for entry in models.values()],
                "discovery": None if discovery is None else discovery.to_dict(),
            }
        staging = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            staging.write_bytes(orjson.dumps(outcomes))
            os.replace(staging, self.path)
        except OSError as exc:  # the other workers then list by themselves: more calls, nothing lost
            log.warning("Could not share the start-up discovery in %s: %s", self.path, exc)


def _row(entry: ModelEntry) -> dict[str, Any]:
    return {"identifier": entry.identifier, "provider_id": entry.provider_id,
            "provider_resource_id": entry.provider_resource_id, "model_type": entry.model_type,
            "metadata": entry.metadata, "source": entry.source, "created": entry.created}


def _entry(row: dict[str, Any]) -> ModelEntry:
    return ModelEntry(row["identifier"], row["provider_id"], row["provider_resource_id"], row["model_type"],
                      dict(row["metadata"]), row.get("source", "listed"), int(row["created"]))
