"""scripts/cluster without Redis, on a config with limits: every instance refuses to start, and the
message names the feature and the fix (never several instances counting limits each on its own)."""

from __future__ import annotations

import os
from pathlib import Path

from cluster_helpers import ADMIN_KEY, Cluster, cluster_config

from conftest import _port_block, nginx_or_skip
from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from support.backends import throwaway_database
from support.server import write_config
from support.stack import issue_config


def test_a_cluster_with_limits_and_no_redis_refuses_to_start_naming_the_fix(tmp_path: Path) -> None:
    nginx_or_skip()
    fake = FakeTogether((DEFAULT_API_KEY,)).start()
    try:
        with throwaway_database() as dsn:
            env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYSTACK_")}
            env.update({"RELAYSTACK_POSTGRES_DSN": dsn, "RELAYSTACK_REDIS_URL": "", "RELAYSTACK_ADMIN_KEY": ADMIN_KEY,
                        "TOGETHER_API_KEY": DEFAULT_API_KEY, "TOGETHER_BASE_URL": fake.base_url})
            config = write_config(tmp_path / "run.yaml", cluster_config(issue_config()))
            cluster = Cluster(tmp_path / "cluster", env, fake, dsn, "")
            started = cluster.run("start", str(config), "--instances", "2", "--port", str(_port_block(3)), timeout=120)
    finally:
        fake.stop()
    out = started.stdout + started.stderr
    assert started.returncode != 0, out
    assert "exited during start-up" in out
    assert "rate limits (server.auth/server.quota)" in out and "deployment cooldowns" in out
    assert "state.redis_url" in out and "RELAYSTACK_REDIS_URL" in out
    assert cluster.run("status").returncode != 0  # nothing left running
