"""Builds the app inside each uvicorn worker process from ``RELAYSTACK_RUN_ARGS``."""

from __future__ import annotations

import os

import orjson

from relaystack.api.app import RelaystackApp, create_app

__all__ = ["app_from_environment"]


def app_from_environment() -> RelaystackApp:
    from relaystack.cli import configure_logging, load_run_config

    args = orjson.loads(os.environ.get("RELAYSTACK_RUN_ARGS", "{}"))
    configure_logging(args.get("log_level") or "INFO")
    config = load_run_config(args.get("config"))
    return create_app(config, record_mode=args.get("record_mode"), recordings_dir=args.get("recordings_dir"),
                      workers=args.get("workers"))
