"""Builds the app inside each uvicorn worker process (``relaystack run --workers N``).

The CLI already built the app once to check the config and printed its warnings, so a
worker builds quietly; the first worker to claim ``announce_file`` prints the start-up
details (providers and their models), the others only that they are ready. The workers list
each provider's models once between them, through ``discovery_file``
(``relaystack.shared_discovery``).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

import orjson

from relaystack.api.app import RelaystackApp, create_app
from relaystack.config import load_run_config
from relaystack.logs import configure_logging
from relaystack.shared_discovery import SharedDiscovery

__all__ = ["app_from_environment"]

RUN_ARGS_ENV = "RELAYSTACK_RUN_ARGS"


def app_from_environment() -> RelaystackApp:
    args = orjson.loads(os.environ.get(RUN_ARGS_ENV, "{}"))
    configure_logging(args.get("log_level") or "info", args.get("log_format") or "text")
    with _quiet(bool(args.get("quiet"))):
        config = load_run_config(args.get("config"))
        app = create_app(config, record_mode=args.get("record_mode"), recordings_dir=args.get("recordings_dir"),
                         workers=args.get("workers"))
    app.public_url = args.get("url")
    app.announce = _claim(args.get("announce_file"))
    if args.get("discovery_file"):
        app.shared_discovery = SharedDiscovery(args["discovery_file"])
    return app


@contextlib.contextmanager
def _quiet(quiet: bool) -> Iterator[None]:
    if not quiet:
        yield
        return
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _claim(path: str | None) -> bool:
    """True for exactly one worker process: the first to create ``path``."""
    if not path:
        return True
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    except OSError:
        return True
    return True
