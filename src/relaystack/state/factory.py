"""Which ``SharedState`` a deployment gets, and the one rule: never silently per instance.

- ``state.redis_url`` (or ``RELAYSTACK_REDIS_URL``) set: ``RedisState``, shared by every
  instance and worker process.
- otherwise, one process (SQLite or memory store, one worker): ``LocalState``; exact.
- otherwise (a PostgreSQL store, i.e. several instances, or ``--workers N``): if any feature
  that must be shared is configured (the ``needed_by`` list, from ``needs_of``), relaystack
  **refuses to start**, naming the feature and the fix. If none is, there is nothing to share
  and ``LocalState`` serves.

What needs Redis (``needs_of``), feature by feature:

- rate limits and concurrency (``server.auth``/``server.quota``): on PostgreSQL, yes. With
  ``--workers N`` on one machine they live in ``<db>-limits.db`` (``gateway/counters_sqlite.py``).
- key revocation: never: the store carries it. SQLite's workers share a memory-mapped stamp;
  PostgreSQL's instances read ``keys_version`` every ``probe_interval_s`` (0.5 s). Redis, when
  there, makes it immediate (``gateway/build.share_key_changes``).
- deployment cooldowns (a model with several ``deployments:``): on PostgreSQL, yes. With
  ``--workers N`` on one machine each worker keeps its own, and start-up says so (a warning: a
  worker cooling alone still routes correctly, it only probes a dead deployment more often).

Why refuse rather than fall back to PostgreSQL: a limit check is on every request, and across
instances every request of one key would update the same counter row. On PostgreSQL that is a
round trip plus a row lock all instances queue on, i.e. the gateway's throughput bounded by one
row's commit rate; Redis does it in memory in microseconds. A slow limit nobody chose is worse
than a clear message at start-up.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from relaystack.config import RunConfig, StateConfig
from relaystack.errors import ConfigError
from relaystack.state.base import SharedState
from relaystack.state.local import LocalState

__all__ = ["has_cooldowns", "needs_of", "open_state"]


def open_state(
    config: StateConfig,
    *,
    shared_by: str | None,
    needed_by: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> SharedState:
    """``shared_by`` says why this process is not alone (``"storage.backend: postgres"``,
    ``"--workers 2"``), or None; ``needed_by`` names the configured features that need shared state."""
    url = config.resolved_redis_url(env)
    if url:
        from relaystack.state.redis import RedisState

        return RedisState(url, prefix=config.prefix)
    if shared_by is not None and needed_by:
        raise ConfigError(
            f"{', '.join(needed_by)} must hold across every relaystack process, and this deployment has "
            f"several ({shared_by}), but no Redis is configured. Set state.redis_url in the run config "
            "(or RELAYSTACK_REDIS_URL=redis://host:6379/0); relaystack never keeps them per process silently. "
            "Or run one instance with one worker on SQLite."
        )
    return LocalState()


def has_cooldowns(config: RunConfig) -> bool:
    """A model with several deployments: the router cools a failing one down."""
    return any(model.deployments is not None and len(model.deployments) > 1 for model in config.models)


def needs_of(config: RunConfig) -> list[str]:
    """The configured features that need a shared state across instances (see the docstring)."""
    if config.storage.backend != "postgres":
        return []
    needs: list[str] = []
    auth = config.server.auth
    if (auth is not None or config.server.quota is not None) and (auth is None or auth.limits_backend == "auto"):
        needs.append("rate limits (server.auth/server.quota)")
    if has_cooldowns(config):
        needs.append("deployment cooldowns (models with several deployments)")
    return needs
