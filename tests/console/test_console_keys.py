"""The console with ``server.auth`` on, in a real browser: signing in with the admin key (held in
the tab's memory only), creating a key (its secret shown once), revoking it, and the usage it
made, per key, model and day. One server and one browser for the module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from console_browser import DESKTOP, Browser
from console_fixtures import BROWSER, CHAT_MODEL, OFFLINE_DEFAULT, check_browser_log, start_console_server
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from support.server import RunningServer

pytestmark = [*BROWSER, *OFFLINE_DEFAULT]

ADMIN_KEY = "console-test-admin-" + os.urandom(8).hex()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    home: Path = tmp_path_factory.mktemp("console-auth")
    config = {
        "version": 2,
        "providers": {"inference": [
            {"provider_id": "local", "provider_type": "inline::llama-cpp", "config": {"preload": True}},
        ]},
        "server": {"auth": {"provider_config": {"type": "virtual_keys"}}},
    }
    path = home / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    running = start_console_server(home, {"RELAYSTACK_ADMIN_KEY": ADMIN_KEY}, path)
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser(server: RunningServer) -> Iterator[Browser]:
    session = Browser(server.base_url)
    session.size(*DESKTOP)
    yield session
    session.close()


@pytest.fixture(autouse=True)
def _no_browser_errors(browser: Browser) -> Iterator[None]:
    yield
    check_browser_log(browser)


def _sign_in(browser: Browser, key: str) -> None:
    field = browser.css("#signin-key")
    field.clear()
    field.send_keys(key, Keys.ENTER)


def _signin_shown(browser: Browser) -> bool:
    return bool(browser.css("#page-signin").is_displayed())


def test_the_console_asks_for_the_admin_key_and_keeps_it_in_memory_only(
    server: RunningServer, browser: Browser
) -> None:
    # the page and its assets need no key; everything else does
    assert httpx.get(f"{server.base_url}/console").status_code == 200
    assert httpx.get(f"{server.base_url}/console/static/js/main.js").status_code == 200
    assert httpx.get(f"{server.base_url}/console/api/stats").status_code == 401
    browser.driver.get(f"{server.base_url}/")
    browser.wait(lambda: _signin_shown(browser), "the sign-in page")
    browser.click('[data-nav="status"]')  # every page asks first
    assert _signin_shown(browser) and not browser.css("#page-status").is_displayed()

    _sign_in(browser, "not-the-admin-key")
    browser.wait(lambda: browser.css("#signin-error").is_displayed(), "the refusal")
    assert "Invalid API key" in browser.text("#signin-error")
    refused = browser.errors()  # the browser logs the 401 of that one check, nothing else
    assert len(refused) == 1 and "401" in refused[0]["message"], refused

    _sign_in(browser, ADMIN_KEY)
    browser.wait(lambda: browser.css("#page-status").is_displayed(), "the status page")
    browser.wait(lambda: browser.all('[data-provider="local"]'), "the providers")
    assert browser.css("#session").is_displayed()
    assert "on" in browser.text("#status-summary")  # auth: on
    # nowhere a script (or anyone with the disk) could read it back
    assert browser.driver.get_cookies() == []
    assert browser.js("return document.cookie") == ""
    assert browser.js("return window.sessionStorage.length") == 0
    stored = browser.js("return Object.keys(window.localStorage)")
    assert set(stored) <= {"relaystack-console-theme"}
    assert browser.css("#signin-key").get_attribute("value") == ""
    browser.screenshot("auth-status")


def test_keys_are_created_with_the_secret_shown_once_then_revoked(server: RunningServer, browser: Browser) -> None:
    browser.goto("keys")
    assert browser.css("#keys-on").is_displayed() and not browser.css("#keys-off").is_displayed()
    for field, value in (("#key-name", "ci-bot"), ("#key-owner", "alice"), ("#key-team", "ml"), ("#key-rpm", "60"),
                         ("#key-budget", "5"), ("#key-expires", "30")):
        browser.css(field).send_keys(value)
    browser.click("#key-form button[type=submit]")
    browser.wait(lambda: browser.css("#key-secret").is_displayed(), "the new key's secret")
    secret = browser.text("#key-secret-value")
    assert secret.startswith("rsk-")
    browser.screenshot("keys-created")
    row = browser.wait(lambda: [r for r in browser.all("#keys-table tbody tr") if "ci-bot" in r.text], "the key's row")
    key_id = row[0].get_attribute("data-key")
    assert "alice" in row[0].text and "60 rpm" in row[0].text and "$5.00/month" in row[0].text
    assert secret not in browser.text("#keys-table")  # the list never shows a secret

    # the key works, and what it does is accounted to it
    headers = {"authorization": f"Bearer {secret}"}
    chat = {"model": CHAT_MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": "Say hi."}]}
    answer = httpx.post(f"{server.base_url}/v1/chat/completions", json=chat, headers=headers, timeout=60)
    assert answer.status_code == 200
    browser.click("#key-secret-done")
    assert not browser.css("#key-secret").is_displayed() and browser.text("#key-secret-value") == ""

    # revoking takes two presses: the first arms the button
    browser.click(f'[data-revoke="{key_id}"]')
    assert browser.text(f'[data-revoke="{key_id}"]') == "Confirm revoke"
    browser.click(f'[data-revoke="{key_id}"]')
    browser.wait(lambda: not browser.all(f'tr[data-key="{key_id}"]'), "the key gone from the active keys")
    Select(browser.css("#keys-status")).select_by_value("revoked")
    browser.wait(lambda: browser.all(f'tr[data-key="{key_id}"] [data-status="revoked"]'), "the revoked key")
    refused = httpx.post(f"{server.base_url}/v1/chat/completions", json=chat, headers=headers, timeout=60)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "key_revoked"
    browser.screenshot("keys")

    # usage and spend, per key, model and day
    browser.goto("traffic")
    browser.wait(lambda: browser.css("#usage-on").is_displayed(), "the usage section")
    browser.wait(lambda: key_id in browser.text("#usage-table tbody"), "the key's usage")
    usage_row = next(r for r in browser.all("#usage-table tbody tr") if key_id in r.text)
    assert CHAT_MODEL in usage_row.text and "$0.00" in usage_row.text  # the embedded model costs nothing
    assert "Total" in browser.text("#usage-table tfoot")
    browser.screenshot("traffic-usage")


def test_signing_out_or_reloading_forgets_the_key(browser: Browser) -> None:
    browser.click("#sign-out")
    browser.wait(lambda: _signin_shown(browser), "the sign-in page")
    assert browser.text("#keys-table tbody") == "" and browser.text("#usage-table tbody") == ""
    _sign_in(browser, ADMIN_KEY)
    browser.wait(lambda: browser.css("#page-traffic").is_displayed(), "back where we were")
    browser.driver.refresh()
    browser.wait(lambda: _signin_shown(browser), "signed out by the reload")
