"""A real cluster (scripts/cluster: 3 instances behind nginx) on a throw-away PostgreSQL database
and a random Redis prefix, in front of the fake Together, with server.auth on (virtual keys,
limits) and a model routed over a deployment that always fails and one that works. Skipped with
a one-line reason when PostgreSQL, Redis or nginx is missing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_helpers import ADMIN_KEY, Cluster, cluster_config

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from support.backends import (
    REDIS_URL,
    delete_redis_prefix,
    new_redis_prefix,
    redis_or_skip,
    throwaway_database,
)
from support.server import free_port, write_config
from support.stack import issue_config


def nginx_or_skip() -> None:
    if not (shutil.which("nginx") or Path("/usr/sbin/nginx").exists()):
        pytest.skip("nginx not installed (apt-get install nginx-light)")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    nginx_or_skip()
    redis_or_skip()
    home = tmp_path_factory.mktemp("cluster")
    prefix = new_redis_prefix()
    fake = FakeTogether((DEFAULT_API_KEY,)).start()
    try:
        with throwaway_database() as dsn:
            env = {k: v for k, v in os.environ.items() if not k.startswith("RELAYSTACK_")}
            env.update({"RELAYSTACK_POSTGRES_DSN": dsn, "RELAYSTACK_REDIS_URL": REDIS_URL,
                        "RELAYSTACK_REDIS_PREFIX": prefix, "TOGETHER_API_KEY": DEFAULT_API_KEY,
                        "TOGETHER_BASE_URL": fake.base_url, "HF_HUB_OFFLINE": "1",
                        "RELAYSTACK_ADMIN_KEY": ADMIN_KEY})  # the key secret: scripts/cluster makes one
            config = write_config(home / "run.yaml", cluster_config(issue_config()))
            made = Cluster(home / "cluster", env, fake, dsn, prefix)
            for _attempt in range(3):  # another process on this shared machine may take a port meanwhile
                started = made.run("start", str(config), "--instances", "3", "--port", str(_port_block(4)))
                if started.returncode == 0 or "in use" not in started.stderr + started.stdout:
                    break
            try:
                assert started.returncode == 0, started.stdout + started.stderr
                yield made
            finally:
                stopped = made.run("stop")
                assert stopped.returncode == 0, stopped.stderr
    finally:
        fake.stop()
        delete_redis_prefix(prefix)


def _port_block(size: int) -> int:
    """A base port whose next ``size - 1`` ports are free too (nginx on base, instances after it)."""
    for _ in range(50):
        base = free_port()
        if base + size < 65535 and all(_free(base + i) for i in range(1, size)):
            return base
    raise RuntimeError("no block of free ports")


def _free(port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True
