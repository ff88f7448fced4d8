"""N relaystack instances behind nginx on this machine, sharing PostgreSQL and Redis.

    scripts/cluster start [CONFIG] [--instances 3] [--port 8400] [--dir build/cluster] [--workers 1]
    scripts/cluster status [--dir build/cluster] [--json]
    scripts/cluster stop [--dir build/cluster]

CONFIG is your run.yaml (default: the built-in distribution). The cluster runs a copy of it
with ``storage.backend: postgres`` and ``state.redis_url`` set, from the environment:

    RELAYSTACK_POSTGRES_DSN   default postgresql://postgres@127.0.0.1:5432/relaystack (created if missing)
    RELAYSTACK_REDIS_URL      default redis://127.0.0.1:6379/0; set it empty to run without Redis
    RELAYSTACK_REDIS_PREFIX   default relaystack: (every Redis key and channel starts with it)
    RELAYSTACK_KEY_SECRET     server.auth's HMAC secret, the same on every instance; if unset, one is
                              made once in --dir/key-secret (0600): keep that file, or keys stop working

Instances listen on 127.0.0.1, ports PORT+1 .. PORT+N; nginx on PORT balances them (least
connections; a refused connection is retried on the next instance, a request already sent is
never replayed). Everything lives in --dir: the config copy, nginx.conf, one log per process,
and cluster.json (ports and pids), which ``status`` and ``stop`` read. The processes outlive
this command; ``stop`` ends them (SIGTERM, then SIGKILL after 20 s).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from relaystack.errors import ConfigError
from relaystack.storage.pg_dsn import describe_dsn, normalize_dsn

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/relaystack"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"

NGINX_CONF = """\
{user}
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/nginx-tmp/body;
    proxy_temp_path {dir}/nginx-tmp/proxy;
    fastcgi_temp_path {dir}/nginx-tmp/fastcgi;
    uwsgi_temp_path {dir}/nginx-tmp/uwsgi;
    scgi_temp_path {dir}/nginx-tmp/scgi;
    upstream relaystack {{
        least_conn;
{servers}
        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        client_max_body_size 0;           # relaystack enforces server.max_body_bytes with a clear 413
        location / {{
            proxy_pass http://relaystack;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $remote_addr;
            proxy_buffering off;          # streams are relayed as they come
            proxy_request_buffering off;
            proxy_connect_timeout 2s;
            proxy_read_timeout 600s;
            proxy_next_upstream error timeout;   # only before the request was sent: never replays a POST
        }}
    }}
}}
"""


def main() -> None:
    args = parse_args()
    directory = Path(args.dir).resolve()
    if args.command == "start":
        start(args, directory)
    elif args.command == "status":
        sys.exit(status(directory, as_json=args.json))
    else:
        stop(directory)


# -- start ------------------------------------------------------------------------------
def start(args: argparse.Namespace, directory: Path) -> None:
    state_file = directory / "cluster.json"
    if state_file.exists() and any(_alive(p) for p in _pids(json.loads(state_file.read_text()))):
        sys.exit(f"error: a cluster is already running from {directory} (scripts/cluster stop --dir {directory})")
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        sys.exit("error: nginx is not installed (apt-get install nginx-light, or bash bench/setup.sh)")
    busy = [p for p in range(args.port, args.port + args.instances + 1) if not _port_free(p)]
    if busy:
        sys.exit(f"error: ports {busy} are in use; choose another --port (nginx on PORT, instances on the next N)")
    directory.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    env.setdefault("RELAYSTACK_POSTGRES_DSN", DEFAULT_DSN)
    env.setdefault("RELAYSTACK_REDIS_URL", DEFAULT_REDIS)
    env.setdefault("RELAYSTACK_REDIS_PREFIX", "relaystack:")
    asyncio.run(_ensure_database(env["RELAYSTACK_POSTGRES_DSN"]))
    config = write_cluster_config(args.config, directory / "run.yaml")
    if not env.get("RELAYSTACK_KEY_SECRET"):
        env["RELAYSTACK_KEY_SECRET"] = _key_secret(directory)
    instances = []
    for index in range(1, args.instances + 1):
        port = args.port + index
        home = directory / f"instance-{index}"
        home.mkdir(exist_ok=True)
        log = directory / f"instance-{index}.log"
        command = [str(ROOT / ".venv" / "bin" / "relaystack"), "run", str(config), "--host", "127.0.0.1",
                   "--port", str(port), "--workers", str(args.workers)]
        proc = _spawn(command, log, {**env, "RELAYSTACK_HOME": str(home)})
        instances.append({"index": index, "port": port, "pid": proc.pid, "log": str(log)})
    state = {"port": args.port, "dir": str(directory), "config": str(config), "instances": instances, "nginx_pid": None}
    state_file.write_text(json.dumps(state, indent=2))
    try:
        for instance in instances:
            _wait_healthy(f"http://127.0.0.1:{instance['port']}", instance, args.timeout)
        state["nginx_pid"] = _start_nginx(nginx, directory, args.port, [i["port"] for i in instances])
        state_file.write_text(json.dumps(state, indent=2))
        _wait_healthy(f"http://127.0.0.1:{args.port}", None, args.timeout)
    except BaseException:
        stop(directory)
        raise
    redis_url = env["RELAYSTACK_REDIS_URL"]
    print(f"relaystack cluster: {len(instances)} instances behind http://127.0.0.1:{args.port} "
          f"(postgres {describe_dsn(env['RELAYSTACK_POSTGRES_DSN'])}, "
          f"redis {_where(redis_url) if redis_url else 'off'}); "
          f"logs in {directory}")


def write_cluster_config(source: str | None, target: Path) -> Path:
    """The user's run.yaml with the shared backends switched on (values read from the environment)."""
    if source and source != "default":
        raw = yaml.safe_load(Path(source).read_text()) or {}
    else:
        from importlib import resources

        raw = yaml.safe_load(resources.files("relaystack.distributions").joinpath("default.yaml").read_text())
    storage = dict(raw.get("storage") or {})
    storage.update({"backend": "postgres", "dsn": "${env.RELAYSTACK_POSTGRES_DSN}"})
    raw["storage"] = storage
    raw["state"] = {**(raw.get("state") or {}), "redis_url": "${env.RELAYSTACK_REDIS_URL:=}",
                    "prefix": "${env.RELAYSTACK_REDIS_PREFIX:=relaystack:}"}
    target.write_text("# written by scripts/cluster from " + (source or "the built-in default") + "\n"
                      + yaml.safe_dump(raw, sort_keys=False))
    return target


def _key_secret(directory: Path) -> str:
    """The key secret every instance hashes keys with: read from --dir/key-secret, made once."""
    from relaystack.gateway.keys import load_server_secret

    try:
        return load_server_secret(None, directory).decode()
    except ConfigError as exc:
        sys.exit(f"error: {exc}")


async def _ensure_database(dsn: str) -> None:
    import asyncpg

    try:
        dsn = normalize_dsn(dsn, "RELAYSTACK_POSTGRES_DSN")
    except ConfigError as exc:
        sys.exit(f"error: {exc}")
    database = urlsplit(dsn).path.lstrip("/")
    admin_dsn = urlsplit(dsn)._replace(path="/postgres").geturl()
    try:
        conn = await asyncpg.connect(admin_dsn, timeout=10)
    except (OSError, asyncpg.PostgresError) as exc:
        sys.exit(f"error: cannot reach PostgreSQL at {describe_dsn(dsn)} ({type(exc).__name__}); "
                 "set RELAYSTACK_POSTGRES_DSN")
    try:
        if database and not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database):
            await conn.execute(f'CREATE DATABASE "{database}"')
            print(f"created database {database}")
    finally:
        await conn.close()


def _start_nginx(nginx: str, directory: Path, port: int, ports: list[int]) -> int:
    (directory / "nginx-tmp").mkdir(exist_ok=True)
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=1 fail_timeout=2s;" for p in ports)
    conf = NGINX_CONF.format(user="user root;" if os.geteuid() == 0 else "", dir=directory, port=port,
                             servers=servers)
    (directory / "nginx.conf").write_text(conf)
    proc = _spawn([nginx, "-p", str(directory), "-c", str(directory / "nginx.conf"), "-g", "daemon off;"],
                  directory / "nginx.log", dict(os.environ))
    return proc.pid


def _spawn(command: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_healthy(base: str, instance: dict[str, Any] | None, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if instance is not None and not _alive(instance["pid"]):
            tail = Path(instance["log"]).read_text(errors="replace")[-2000:]
            sys.exit(f"error: instance {instance['index']} exited during start-up:\n{tail}")
        if _health(base) is not None:
            return
        time.sleep(0.2)
    sys.exit(f"error: {base} did not become healthy in {timeout_s:.0f} s")


# -- status and stop --------------------------------------------------------------------
def status(directory: Path, *, as_json: bool) -> int:
    state_file = directory / "cluster.json"
    if not state_file.exists():
        print(f"no cluster in {directory}")
        return 1
    state = json.loads(state_file.read_text())
    for instance in state["instances"]:
        instance["alive"] = _alive(instance["pid"])
        instance["health"] = _health(f"http://127.0.0.1:{instance['port']}") if instance["alive"] else None
    state["nginx_alive"] = bool(state.get("nginx_pid")) and _alive(state["nginx_pid"])
    if as_json:
        print(json.dumps(state, indent=2))
    else:
        print(f"nginx  http://127.0.0.1:{state['port']}  {'up' if state['nginx_alive'] else 'DOWN'}")
        for instance in state["instances"]:
            health = instance["health"] or {}
            store = (health.get("store") or {}).get("status", "-")
            shared = (health.get("state") or {}).get("status", "-")
            print(f"instance {instance['index']}  :{instance['port']}  pid {instance['pid']}  "
                  f"{'up' if instance['alive'] else 'DOWN'}  store {store}  state {shared}")
    up = state["nginx_alive"] and all(i["alive"] and i["health"] for i in state["instances"])
    return 0 if up else 3


def stop(directory: Path) -> None:
    state_file = directory / "cluster.json"
    if not state_file.exists():
        print(f"no cluster in {directory}")
        return
    pids = [p for p in _pids(json.loads(state_file.read_text())) if _alive(p)]
    for pid in pids:
        _signal(pid, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    for pid in pids:
        if _alive(pid):
            _signal(pid, signal.SIGKILL)
    state_file.unlink()
    print(f"stopped {len(pids)} processes")


def _port_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _pids(state: dict[str, Any]) -> list[int]:
    return [i["pid"] for i in state["instances"]] + ([state["nginx_pid"]] if state.get("nginx_pid") else [])


def _alive(pid: int) -> bool:
    try:
        waited, _ = os.waitpid(pid, os.WNOHANG)  # reap it if it is our child and exited
        if waited == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (exited, not yet reaped by its parent) is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0] != "Z"
    except (OSError, IndexError):
        return True


def _signal(pid: int, sig: signal.Signals) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _health(base: str) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(base + "/v1/health", timeout=2) as response:
            data: dict[str, Any] = json.loads(response.read())
            return data
    except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException):
        return None


def _where(url: str) -> str:
    """host:port/path of a Redis URL, never its credentials (describe_dsn does PostgreSQL's)."""
    try:
        parts = urlsplit(url)
        return f"{parts.hostname}:{parts.port or ''}{parts.path}"
    except ValueError:
        return "(a malformed URL)"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/cluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["start", "status", "stop"])
    parser.add_argument("config", nargs="?", help="run.yaml (start only; default: the built-in distribution)")
    parser.add_argument("--dir", default=str(ROOT / "build" / "cluster"), help="where the cluster's files live")
    parser.add_argument("--instances", "-n", type=int, default=3)
    parser.add_argument("--port", type=int, default=8400, help="nginx's port; instances use the next N")
    parser.add_argument("--workers", type=int, default=1, help="worker processes per instance")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for start-up")
    parser.add_argument("--json", action="store_true", help="status as JSON")
    return parser.parse_args()


if __name__ == "__main__":
    main()
