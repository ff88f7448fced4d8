"""The ``relaystack`` command."""

from __future__ import annotations

import logging
import os
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import click
import orjson

from relaystack import __version__
from relaystack.config import RunConfig
from relaystack.errors import ConfigError

__all__ = ["main"]

DEFAULT_CONFIG = "default"


@click.group()
@click.version_option(__version__, prog_name="relaystack")
def cli() -> None:
    """relaystack: an OpenAI- and llama-stack-compatible inference server."""


@cli.command()
@click.argument("config", required=False)
@click.option("--host", default=None, help="Interface to listen on (default: server.host or 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: $RELAYSTACK_PORT, server.port, or 8321).")
@click.option("--workers", type=int, default=None, help="Worker processes sharing the store (default 1).")
@click.option("--record-mode", type=click.Choice(["live", "record", "replay"]), default=None,
              help="Record or replay upstream traffic (default: $RELAYSTACK_RECORD_MODE or live).")
@click.option("--recordings", "recordings_dir", default=None,
              help="Recordings folder (holds responses/*.json); default $RELAYSTACK_RECORDINGS_DIR.")
@click.option("--env", "env_pairs", multiple=True, metavar="KEY=VALUE",
              help="Set an environment variable before the config is read (repeatable).")
@click.option("--log-level", default=None, help="debug, info, warning (default: $RELAYSTACK_LOG_LEVEL or info).")
def run(config: str | None, host: str | None, port: int | None, workers: int | None, record_mode: str | None,
        recordings_dir: str | None, env_pairs: tuple[str, ...], log_level: str | None) -> None:
    """Serve CONFIG (a llama-stack-style run.yaml); without it, the built-in default."""
    import uvicorn

    for pair in env_pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.replace("_", "").isalnum():
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--env")
        os.environ[key] = value
    level = (log_level or os.environ.get("RELAYSTACK_LOG_LEVEL") or "info").upper()
    configure_logging(level)
    run_config = _load_or_exit(config)
    chosen_workers = workers or run_config.server.workers
    # the gateway shares limit counters and metrics between workers (relaystack.gateway)
    os.environ["RELAYSTACK_WORKERS"] = str(chosen_workers)
    if run_config.server.metrics:
        from relaystack.gateway.metrics import prepare_multiprocess

        prepare_multiprocess(chosen_workers)
    _check_or_exit(run_config, record_mode, recordings_dir)
    chosen_port = port or _env_port() or run_config.server.port
    chosen_host = host or run_config.server.host
    _warn_if_open(run_config, chosen_host)
    # every worker process rebuilds the app from these arguments (see api/factory.py)
    os.environ["RELAYSTACK_RUN_ARGS"] = orjson.dumps({
        "config": config, "record_mode": record_mode, "recordings_dir": recordings_dir, "log_level": level,
    }).decode()
    scheme = "https" if run_config.server.tls_certfile else "http"
    click.echo(f"relaystack {__version__}: serving {run_config.source} on {scheme}://{chosen_host}:{chosen_port}"
               f" ({chosen_workers} worker{'s' if chosen_workers > 1 else ''})", err=True)
    uvicorn.run(
        "relaystack.api.factory:app_from_environment", factory=True, host=chosen_host, port=chosen_port,
        workers=chosen_workers, loop="auto", http="auto", access_log=False, log_level=level.lower(),
        timeout_graceful_shutdown=30, lifespan="on", **_tls_options(run_config),
    )


def _tls_options(run_config: RunConfig) -> dict[str, Any]:
    """llama-stack's server.tls_*: HTTPS, and client certificates when a CA file is given."""
    server = run_config.server
    if server.tls_certfile is None:
        return {}
    import ssl

    options: dict[str, Any] = {"ssl_certfile": str(server.tls_certfile), "ssl_keyfile": str(server.tls_keyfile)}
    if server.tls_cafile is not None:
        options.update(ssl_ca_certs=str(server.tls_cafile), ssl_cert_reqs=ssl.CERT_REQUIRED)
    return options


def _warn_if_open(run_config: RunConfig, host: str) -> None:
    if run_config.server.auth is None and host not in ("127.0.0.1", "localhost", "::1"):
        logging.getLogger("relaystack").warning(
            "Listening on %s without server.auth: anyone who can reach this port can use every provider key "
            "this server holds. See README, 'Sharing relaystack with a team'.", host,
        )


def _env_port() -> int | None:
    value = os.environ.get("RELAYSTACK_PORT") or os.environ.get("LLAMA_STACK_PORT")
    return int(value) if value and value.isdigit() else None


def _load_or_exit(config: str | None) -> RunConfig:
    try:
        return load_run_config(config)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def _check_or_exit(run_config: RunConfig, record_mode: str | None, recordings_dir: str | None) -> None:
    """Build the app once here, so a bad provider config or record mode stops start-up with one
    clear line instead of a traceback from inside a uvicorn worker."""
    from relaystack.api.app import create_app

    try:
        create_app(run_config, record_mode=record_mode, recordings_dir=recordings_dir)
    except ConfigError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


def load_run_config(config: str | None) -> RunConfig:
    from relaystack.config import load_config, parse_config

    if config is None or config == DEFAULT_CONFIG:
        text = resources.files("relaystack.distributions").joinpath("default.yaml").read_text()
        import yaml

        return parse_config(yaml.safe_load(text), source="<built-in default>")
    return load_config(Path(config))


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def _mount_optional_groups() -> None:
    try:
        from relaystack.recording.cli import recordings
    except ImportError:  # pragma: no cover - the recording CLI is part of the package
        return
    cli.add_command(recordings)
    from relaystack.gateway.cli import keys

    cli.add_command(keys)


_mount_optional_groups()


def main() -> None:
    cli()
