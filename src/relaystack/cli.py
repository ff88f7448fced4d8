"""The ``relaystack`` command.

Every bad option, environment value or config is one line on stderr (``error: ...``) and
exit code 2; a port that cannot be listened on is one line naming ``--port``.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click
import orjson

from relaystack import __version__
from relaystack.config import RunConfig, load_run_config
from relaystack.errors import ConfigError
from relaystack.logs import LOG_FORMATS, LOG_LEVELS, configure_logging
from relaystack.recording.settings import RecordMode
from relaystack.text_template import accelerator

__all__ = ["main"]

log = logging.getLogger("relaystack")


class _OneLineErrors(click.Group):
    """click's usage errors as one line (``error: ...``, exit 2) instead of a usage block."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("standalone_mode", True) is False:
            return super().main(*args, **kwargs)
        try:
            code = super().main(*args, **{**kwargs, "standalone_mode": False})
        except click.UsageError as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted.", err=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


@click.group(cls=_OneLineErrors)
# which implementation proves streamed text events: "c" (built at install) or "python" (the fallback)
@click.version_option(__version__, prog_name="relaystack",
                      message=f"%(prog)s %(version)s (stream template proof: {accelerator()})")
def cli() -> None:
    """relaystack: an OpenAI- and llama-stack-compatible inference server."""


@cli.command()
@click.argument("config", required=False)
@click.option("--host", default=None, help="Interface to listen on (default: server.host or 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port, 1-65535 (default: $RELAYSTACK_PORT, server.port, or 8321).")
@click.option("--workers", type=click.IntRange(1, 64), default=None,
              help="Worker processes sharing the store, 1-64 (default: server.workers or 1).")
@click.option("--record-mode", type=click.Choice(RecordMode.choices(), case_sensitive=False), default=None,
              help="Record or replay upstream traffic (default: $RELAYSTACK_RECORD_MODE or live).")
@click.option("--recordings", "recordings_dir", default=None,
              help="Recordings folder (holds responses/*.json); default $RELAYSTACK_RECORDINGS_DIR.")
@click.option("--recording-format", type=click.Choice(["auto", "seed", "per-test"]), default=None,
              help="Which llama-stack recording generation record mode writes (default: "
                   "$RELAYSTACK_RECORDING_FORMAT or auto: as the folder's files).")
@click.option("--env", "env_pairs", multiple=True, metavar="KEY=VALUE",
              help="Set an environment variable before the config is read (repeatable).")
@click.option("--log-level", type=click.Choice(LOG_LEVELS, case_sensitive=False), default=None,
              help="Default: $RELAYSTACK_LOG_LEVEL or info.")
@click.option("--log-format", type=click.Choice(LOG_FORMATS, case_sensitive=False), default=None,
              help="text, or json (one object per line); default: $RELAYSTACK_LOG_FORMAT or text.")
def run(config: str | None, host: str | None, port: int | None, workers: int | None, record_mode: str | None,
        recordings_dir: str | None, recording_format: str | None, env_pairs: tuple[str, ...],
        log_level: str | None, log_format: str | None) -> None:
    """Serve CONFIG (a llama-stack-style run.yaml); without it, the built-in default."""
    if recording_format:
        os.environ["RELAYSTACK_RECORDING_FORMAT"] = recording_format  # read by every worker
    for pair in env_pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.replace("_", "").isalnum():
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="--env")
        os.environ[key] = value
    level = _choice(log_level, "RELAYSTACK_LOG_LEVEL", LOG_LEVELS, "info", "--log-level")
    fmt = _choice(log_format, "RELAYSTACK_LOG_FORMAT", LOG_FORMATS, "text", "--log-format")
    configure_logging(level, fmt)
    run_config = _or_exit(lambda: load_run_config(config))
    chosen_port = port or _env_port() or run_config.server.port
    chosen_host = host or run_config.server.host
    chosen_workers = workers or run_config.server.workers
    if run_config.server.metrics:  # several workers write their metrics to one directory
        from relaystack.gateway.metrics import prepare_multiprocess

        prepare_multiprocess(chosen_workers)
    app = _build_or_exit(run_config, record_mode, recordings_dir, chosen_workers)
    _warn_if_open(run_config, chosen_host)
    from relaystack.server import PortError, ServeOptions, bind_socket, serve

    try:
        sock = bind_socket(chosen_host, chosen_port)
    except PortError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    log.info("relaystack %s: serving %s on %s://%s:%d (%d worker%s)", __version__, run_config.source,
             "https" if run_config.server.tls_certfile else "http", chosen_host, chosen_port, chosen_workers,
             "s" if chosen_workers > 1 else "")
    options = ServeOptions(
        host=chosen_host, port=chosen_port, workers=chosen_workers, log_level=level, log_format=fmt,
        run_args={"config": config, "record_mode": record_mode, "recordings_dir": recordings_dir,
                  "workers": chosen_workers},
    )
    serve(app, sock, options)


def _choice(given: str | None, env: str, choices: tuple[str, ...], default: str, option: str) -> str:
    if given:
        return given.lower()
    value = os.environ.get(env)
    if not value:
        return default
    if value.lower() not in choices:
        _exit(f"${env} is {value!r}: choose one of {', '.join(choices)} (or pass {option}).")
    return value.lower()


def _warn_if_open(run_config: RunConfig, host: str) -> None:
    if run_config.server.auth is None and host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("Listening on %s without server.auth: anyone who can reach this port can use every provider "
                    "key this server holds. See README, 'Sharing relaystack with a team'.", host)


def _env_port() -> int | None:
    for name in ("RELAYSTACK_PORT", "LLAMA_STACK_PORT"):
        value = os.environ.get(name)
        if value:
            if not (value.isascii() and value.isdigit() and 1 <= int(value) <= 65535):
                _exit(f"${name} is {value!r}: a port must be a whole number from 1 to 65535 (or pass --port).")
            return int(value)
    return None


def _or_exit(load: Any) -> RunConfig:
    try:
        config: RunConfig = load()
    except ConfigError as exc:
        _exit(str(exc))
    return config


def _build_or_exit(run_config: RunConfig, record_mode: str | None, recordings_dir: str | None, workers: int) -> Any:
    """Build the app here, so a bad provider config or record mode stops start-up with one
    clear line instead of a traceback from inside a uvicorn worker; one worker serves this app."""
    from relaystack.api.app import create_app

    try:
        return create_app(run_config, record_mode=record_mode, recordings_dir=recordings_dir, workers=workers)
    except ConfigError as exc:
        _exit(str(exc))


def _exit(message: str) -> Any:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@cli.command()
@click.argument("provider_type", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
def providers(provider_type: str | None, as_json: bool) -> None:
    """List every provider type with its config keys; with PROVIDER_TYPE, its sample run.yaml entry."""
    import yaml

    from relaystack.providers.catalog import CATALOG
    from relaystack.providers.describe import describe, describe_all, text_listing

    if provider_type is not None:
        row = CATALOG.get(provider_type) or CATALOG.get(f"remote::{provider_type}")
        if row is None:
            click.echo(f"error: unknown provider type {provider_type!r}; `relaystack providers` lists them.", err=True)
            sys.exit(2)
        info = describe(row)
        if as_json:
            click.echo(orjson.dumps(info, option=orjson.OPT_INDENT_2).decode())
            return
        entry = {"provider_id": row.provider_type.split("::")[-1], "provider_type": row.provider_type,
                 "config": info["sample_config"]}
        click.echo(f"# {row.provider_type}: {row.summary}")
        click.echo(f"# config keys: {', '.join(info['config_keys'])}")
        if row.key_field:
            click.echo(f"# per-request key: X-LlamaStack-Provider-Data {{\"{row.key_field}\": \"...\"}}")
        click.echo(yaml.safe_dump({"providers": {"inference": [entry]}}, sort_keys=False).rstrip())
        return
    described = describe_all()
    if as_json:
        click.echo(orjson.dumps(described, option=orjson.OPT_INDENT_2).decode())
        return
    click.echo(text_listing(described))


def _mount_optional_groups() -> None:
    from relaystack.recording.cli import recordings

    cli.add_command(recordings)
    from relaystack.gateway.cli import keys

    cli.add_command(keys)


_mount_optional_groups()


def main() -> None:
    cli()
