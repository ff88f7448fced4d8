"""The console in a real browser (Debian's Chromium, headless) against ``relaystack run`` with the
offline default's providers (the embedded SmolLM2 chat model and MiniLM embeddings) plus a second
provider, a fake vLLM on 127.0.0.1 that fails and then goes away, and a model with two
deployments (the fake first, the embedded model as its fallback) whose first one cools down.

One server and one browser for the module; the tests run in order (a chat first, then the
traffic it made). Every test ends with an empty browser log (``check_browser_log``), and
screenshots of each page land in build/console-screenshots/.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from console_browser import DESKTOP, PHONE, Browser
from console_fixtures import (
    BROWSER,
    CHAT_MODEL,
    EMBED_MODEL,
    OFFLINE_DEFAULT,
    check_browser_log,
    start_console_server,
    stats,
)
from fake_vllm import MODEL as FAKE_MODEL
from fake_vllm import FakeVLLM
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from support.server import RunningServer

pytestmark = [*BROWSER, *OFFLINE_DEFAULT]

VLLM_MODEL = f"vllm/{FAKE_MODEL}"
ROUTED_MODEL = "team-chat"
PAGES = ("playground", "status", "traffic", "keys")
# records the assistant message's text length at every change while it streams
WATCH_STREAM = """
window.__lengths = [];
const transcript = document.querySelector('#transcript');
window.__watch && window.__watch.disconnect();
window.__watch = new MutationObserver(() => {
  const text = transcript.querySelector('.message.assistant.streaming .text');
  if (text) window.__lengths.push(text.textContent.length);
});
window.__watch.observe(transcript, {subtree: true, childList: true, characterData: true});
"""


@pytest.fixture(scope="module")
def fake_vllm() -> Iterator[FakeVLLM]:
    fake = FakeVLLM().start()
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, fake_vllm: FakeVLLM) -> Iterator[RunningServer]:
    home: Path = tmp_path_factory.mktemp("console")
    config = {
        "version": 2,
        "providers": {"inference": [  # the built-in default's embedded models, and the fake vLLM
            {"provider_id": "local", "provider_type": "inline::llama-cpp", "config": {"preload": True}},
            {"provider_id": "local-embeddings", "provider_type": "inline::sentence-transformers",
             "config": {"preload": True}},
            {"provider_id": "vllm", "provider_type": "remote::vllm", "config": {"url": fake_vllm.base_url}},
        ]},
        "models": [{
            "model_id": ROUTED_MODEL, "model_type": "llm",
            "deployments": [
                {"provider_id": "vllm", "provider_model_id": FAKE_MODEL, "name": "primary"},
                {"provider_id": "local", "provider_model_id": "smollm2-135m-instruct", "name": "fallback",
                 "priority": 1},
            ],
            "routing": {"retries": 0, "cooldown": {"failures": 1, "window_s": 60, "cooldown_s": 300}},
        }],
    }
    path = home / "run.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    running = start_console_server(home, {}, path)
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


def _send(browser: Browser, text: str) -> None:
    box = browser.css("#chat-input")
    box.clear()
    box.send_keys(text, Keys.ENTER)  # Enter sends (Shift+Enter would start a new line)


def _set(browser: Browser, selector: str, value: str) -> None:
    field = browser.css(selector)
    field.clear()
    field.send_keys(value)


def _wait_reply_done(browser: Browser) -> str:
    browser.wait(lambda: not browser.all("#transcript .message.streaming"), "the generation's end", timeout=120)
    return browser.text("#transcript li.message.assistant:last-child .text")


def test_root_redirects_to_the_console_and_the_pages_work_from_the_keyboard(
    server: RunningServer, browser: Browser
) -> None:
    answer = httpx.get(server.base_url + "/", follow_redirects=False)
    assert answer.status_code == 307 and answer.headers["location"] == "/console"
    browser.driver.get(server.base_url + "/")
    browser.wait(lambda: browser.driver.current_url.endswith("/console#/playground"), "the redirect to the console")
    browser.wait(lambda: not browser.css("#page-playground").get_attribute("hidden") is not None, "the playground")
    for page in PAGES[1:]:
        browser.css(f'[data-nav="{page}"]').send_keys(Keys.ENTER)  # a focused link, activated with Enter
        browser.wait(lambda page=page: browser.css(f"#page-{page}").is_displayed(), f"page {page}")
        assert browser.css(f'[data-nav="{page}"]').get_attribute("aria-current") == "page"
    browser.driver.back()  # the URL's hash is the page: the back button works
    browser.wait(lambda: browser.css("#page-traffic").is_displayed(), "back to traffic")
    # on a fresh load, the first Tab reaches the skip link, which moves focus to the page's content
    browser.driver.refresh()
    browser.wait(lambda: browser.css("#page-traffic").is_displayed(), "traffic, reloaded")
    ActionChains(browser.driver).send_keys(Keys.TAB).perform()
    assert browser.js("return document.activeElement.className") == "skip-link"
    ActionChains(browser.driver).send_keys(Keys.ENTER).perform()
    browser.wait(lambda: browser.js("return document.activeElement.id") == "main", "focus on the content")
    assert browser.css("#page-traffic").is_displayed()
    browser.goto("playground")
    # the playground's tabs follow the ARIA pattern: arrow keys move between them
    browser.css("#tab-chat").send_keys(Keys.ARROW_RIGHT)
    browser.wait(lambda: browser.css("#panel-embeddings").is_displayed(), "the embeddings tab")
    assert browser.js("return document.activeElement.id") == "tab-embeddings"
    browser.css("#tab-embeddings").send_keys(Keys.ARROW_LEFT)
    browser.wait(lambda: browser.css("#panel-chat").is_displayed(), "the chat tab")
    # the model list holds every served chat model, the fake vLLM's included
    browser.wait(lambda: len(browser.all("#chat-model option")) >= 2, "the model list")
    options = {o.get_attribute("value") for o in browser.all("#chat-model option")}
    assert {CHAT_MODEL, VLLM_MODEL, ROUTED_MODEL} <= options and EMBED_MODEL not in options


def test_playground_streams_a_chat_as_the_tokens_arrive(browser: Browser) -> None:
    Select(browser.css("#chat-model")).select_by_value(CHAT_MODEL)
    _set(browser, "#chat-system", "You are a patient teacher.")
    _set(browser, "#chat-max-tokens", "120")
    browser.js(WATCH_STREAM)
    _send(browser, "Count from one to twenty, in words.")
    text = _wait_reply_done(browser)
    lengths = [n for n in browser.js("return window.__lengths") if n > 0]
    # the text grew in place, event by event, before the stream ended
    assert len(set(lengths)) >= 3 and lengths == sorted(lengths), lengths
    assert text and len(text) >= max(lengths)
    assert browser.text("#transcript li.message.user .text") == "Count from one to twenty, in words."
    assert browser.text("#m-ttft").endswith(("ms", "s"))
    assert browser.text("#m-rate").endswith("tok/s")
    assert "=" in browser.text("#m-usage")  # prompt + completion = total, from the stream's usage
    assert browser.text("#m-provider") == "local"
    browser.screenshot("playground")


def test_playground_speaks_the_responses_api_too(browser: Browser) -> None:
    browser.click("#chat-clear")
    browser.click('input[name="api"][value="responses"]')
    _send(browser, "Say hello to the console.")
    text = _wait_reply_done(browser)
    assert text
    assert browser.wait(lambda: "=" in browser.text("#m-usage"), "usage from response.completed")
    browser.click('input[name="api"][value="chat"]')


def test_stop_button_aborts_and_the_server_cancels_the_generation(server: RunningServer, browser: Browser) -> None:
    cancelled_before = stats(server.base_url)["total"]["cancelled"]
    browser.click("#chat-clear")
    _set(browser, "#chat-max-tokens", "1500")
    browser.js(WATCH_STREAM)
    _send(browser, "Write a very long story about a dragon who learns to bake bread.")
    browser.wait(lambda: max(browser.js("return window.__lengths") or [0]) > 20, "the story to start")
    assert browser.css("#chat-stop").is_enabled()
    health = httpx.get(f"{server.base_url}/v1/health", timeout=10).json()
    assert health["providers"]["local"]["queue"] == 1  # the story is being written
    browser.click("#chat-stop")
    browser.wait(lambda: browser.all("#transcript .message.assistant.stopped"), "the stopped message")
    assert "Stopped" in browser.text("#transcript .message.assistant.stopped .note")
    assert not browser.css("#chat-stop").is_enabled() and browser.css("#chat-send").is_enabled()
    # the server saw the client go away (499) and cancelled the generation: the model is free again
    browser.wait(lambda: stats(server.base_url)["total"]["cancelled"] > cancelled_before, "the server's cancel")
    assert "499" in server.log() and "client_closed_request" in server.log()
    _set(browser, "#chat-max-tokens", "24")
    _send(browser, "Say yes.")
    assert _wait_reply_done(browser)


def test_playground_chats_with_any_served_model(browser: Browser, fake_vllm: FakeVLLM) -> None:
    browser.click("#chat-clear")
    Select(browser.css("#chat-model")).select_by_value(VLLM_MODEL)
    for _ in range(4):  # the temperature slider, from the keyboard: 0.7 -> 0.3
        browser.css("#chat-temperature").send_keys(Keys.ARROW_LEFT)
    assert browser.text("#chat-temperature-value") == "0.3"
    _send(browser, "Hello, fake upstream.")
    assert _wait_reply_done(browser).strip() == "The fake upstream says hello."
    assert browser.text("#m-provider") == "vllm"
    # what the upstream got: the playground's system prompt, temperature and max tokens
    sent = fake_vllm.chat_bodies[-1]
    assert sent["messages"] == [{"role": "system", "content": "You are a patient teacher."},
                                {"role": "user", "content": "Hello, fake upstream."}]
    assert (sent["temperature"], sent["max_tokens"], sent["stream"]) == (0.3, 24, True)
    Select(browser.css("#chat-model")).select_by_value(CHAT_MODEL)


def test_embeddings_tab_compares_two_texts(browser: Browser) -> None:
    browser.click("#tab-embeddings")
    Select(browser.css("#embed-model")).select_by_value(EMBED_MODEL)
    browser.click("#embed-run")
    browser.wait(lambda: browser.css("#embed-result").is_displayed(), "the similarity")
    similar = float(browser.text("#embed-score"))
    assert "384 dimensions" in browser.text("#embed-detail")
    _set(browser, "#embed-b", "Quarterly tax filings are due in April.")
    browser.click("#embed-run")
    browser.wait(lambda: float(browser.text("#embed-score")) != similar, "the second similarity")
    unrelated = float(browser.text("#embed-score"))
    assert -1.0 <= unrelated < similar <= 1.0
    browser.screenshot("playground-embeddings")
    browser.click("#tab-chat")


def test_traffic_finds_and_opens_stored_conversations(browser: Browser) -> None:
    browser.goto("traffic")
    row = '#stored-table tbody tr[data-id^="chatcmpl-"]'
    browser.wait(lambda: browser.all(row), "stored chat completions")
    counting = [r for r in browser.all(row) if "Count from one to twenty" in r.text]
    assert len(counting) == 1
    counting[0].find_element("css selector", "[data-open]").send_keys(Keys.ENTER)
    browser.wait(lambda: browser.js("return document.querySelector('#conversation').open"), "the conversation")
    browser.wait(lambda: len(browser.all("#conversation-body .message")) == 3, "system, user and assistant")
    roles = [m.get_attribute("class").split()[-1] for m in browser.all("#conversation-body .message")]
    assert roles == ["system", "user", "assistant"]
    assert browser.text("#conversation-body .message.user .text") == "Count from one to twenty, in words."
    assert CHAT_MODEL in browser.text("#conversation-meta")
    browser.screenshot("traffic-conversation")
    browser.css("#conversation").send_keys(Keys.ESCAPE)  # a dialog closes with Escape
    browser.wait(lambda: not browser.js("return document.querySelector('#conversation').open"), "closed")

    # by model: the fake vLLM's conversation only
    Select(browser.css("#stored-model")).select_by_value(VLLM_MODEL)
    browser.wait(lambda: [r.text for r in browser.all(row)] and all(VLLM_MODEL in r.text for r in browser.all(row))
                 and "Hello, fake upstream" in browser.text("#stored-table tbody"), "the vLLM model's rows")
    # by time: nothing was stored tomorrow
    Select(browser.css("#stored-model")).select_by_value("")
    browser.js("document.querySelector('#stored-from').value = arguments[0]", "2099-01-01T00:00")
    browser.click("#stored-form button[type=submit]")
    browser.wait(lambda: "Nothing stored matches" in browser.text("#stored-status"), "an empty search")
    browser.js("document.querySelector('#stored-from').value = ''")

    # the Responses API's stored responses, with their input
    Select(browser.css("#stored-kind")).select_by_value("responses")
    browser.wait(lambda: browser.all('#stored-table tbody tr[data-id^="resp_"]'), "stored responses")
    browser.click('#stored-table tbody tr[data-id^="resp_"] [data-open]')
    browser.wait(lambda: "Say hello to the console." in browser.text("#conversation-body"), "the response's input")
    assert browser.all("#conversation-body .message.assistant")
    browser.click("#conversation-close")
    Select(browser.css("#stored-kind")).select_by_value("chat")


def test_status_shows_a_provider_degraded_then_unreachable_live(
    server: RunningServer, browser: Browser, fake_vllm: FakeVLLM
) -> None:
    browser.goto("status")
    outcome = '[data-provider="vllm"] [data-outcome]'
    browser.wait(lambda: browser.css(outcome).get_attribute("data-outcome") == "ok", "vllm ok")
    assert "ready" in browser.text('[data-provider="local"]')  # the local model's state and queue
    browser.wait(lambda: "queue 0" in browser.text('[data-provider="local"]'), "the local model's queue")
    assert browser.css("#status-live").is_selected()
    # the recording mode, and every model with its type and provider
    assert "Recording" in browser.text("#status-summary") and "live" in browser.text("#status-summary")
    rows = {r.find_elements("css selector", "td")[0].text: r.text for r in browser.all("#models-table tbody tr")}
    assert "llm" in rows[CHAT_MODEL] and "local" in rows[CHAT_MODEL]
    assert "embedding" in rows[EMBED_MODEL] and "384 dimensions" in rows[EMBED_MODEL]
    assert "vllm" in rows[VLLM_MODEL]
    chat = {"model": VLLM_MODEL, "messages": [{"role": "user", "content": "hi"}]}

    fake_vllm.mode = "failing"  # the upstream answers 503
    assert httpx.post(f"{server.base_url}/v1/chat/completions", json=chat, timeout=30).status_code == 503
    browser.wait(lambda: browser.css(outcome).get_attribute("data-outcome") == "degraded", "vllm degraded",
                 timeout=30)
    assert "HTTP 503" in browser.text('[data-provider="vllm"]')
    # a model with two deployments: the failing one cools down, the embedded model answers meanwhile
    primary = '[data-deployment="primary"] [data-state]'
    assert browser.css(primary).get_attribute("data-state") == "healthy"
    routed = httpx.post(f"{server.base_url}/v1/chat/completions", timeout=60,
                        json={**chat, "model": ROUTED_MODEL, "max_tokens": 8})
    assert routed.status_code == 200 and routed.headers["x-relaystack-deployment"] == "fallback"
    browser.wait(lambda: browser.css(primary).get_attribute("data-state") == "cooling_down", "primary cooling down",
                 timeout=30)
    assert "until" in browser.text('[data-deployment="primary"]')
    assert browser.css('[data-deployment="fallback"] [data-state]').get_attribute("data-state") == "healthy"

    fake_vllm.stop()  # the upstream goes away: connections are refused
    assert httpx.post(f"{server.base_url}/v1/chat/completions", json=chat, timeout=30).status_code == 502
    browser.wait(lambda: browser.css(outcome).get_attribute("data-outcome") == "unreachable", "vllm unreachable",
                 timeout=30)
    assert browser.css('[data-provider="local"] [data-outcome]').get_attribute("data-outcome") == "ok"
    browser.screenshot("status")


def test_traffic_charts_show_rate_latency_and_errors(browser: Browser) -> None:
    browser.goto("traffic")
    browser.wait(lambda: len(browser.all("#chart-rate rect")) > 0, "request bars")
    browser.wait(lambda: browser.all("#chart-errors rect.s2") and browser.all("#chart-errors rect.s4"),
                 "5xx and cancelled bars")
    assert browser.all("#chart-latency path.line, #chart-latency circle")
    note = browser.text("#stats-note")
    assert "inference requests in the last 15 minutes" in note and "1 cancelled" in note
    models = browser.text("#stats-models tbody")
    assert CHAT_MODEL in models and VLLM_MODEL in models and EMBED_MODEL in models
    assert browser.css("#usage-off").is_displayed()  # no accounting without server.auth
    browser.screenshot("traffic")


def test_keys_page_says_auth_is_off(browser: Browser) -> None:
    browser.goto("keys")
    assert browser.css("#keys-off").is_displayed() and not browser.css("#keys-on").is_displayed()
    assert "Auth is off" in browser.text("#keys-off")
    browser.screenshot("keys-auth-off")


def test_every_page_fits_a_phone_and_has_a_dark_theme(browser: Browser) -> None:
    try:
        browser.size(*PHONE)
        for page in PAGES:
            browser.goto(page)
            browser.wait(lambda: browser.js("return document.readyState") == "complete", "layout")
            overflow = browser.js("return document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{page} scrolls sideways by {overflow}px at {PHONE[0]}px"
            browser.screenshot(f"phone-{page}")
        browser.size(*DESKTOP)
        while browser.js("return document.documentElement.dataset.theme || 'system'") != "dark":
            browser.click("#theme-toggle")
        background = browser.js("return getComputedStyle(document.body).backgroundColor")
        assert _luminance(background) < 0.1, background
        for page in PAGES:
            browser.goto(page)
            browser.screenshot(f"dark-{page}")
        while browser.js("return document.documentElement.dataset.theme || 'system'") != "light":
            browser.click("#theme-toggle")
        assert _luminance(browser.js("return getComputedStyle(document.body).backgroundColor")) > 0.8
        # the choice outlives a reload (it is no secret: localStorage)
        browser.driver.refresh()
        browser.wait(lambda: browser.js("return document.documentElement.dataset.theme") == "light", "light again")
    finally:
        browser.size(*DESKTOP)


def _luminance(css_color: str) -> float:
    red, green, blue = (int(part) for part in css_color[css_color.index("(") + 1 : -1].split(",")[:3])
    return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255
