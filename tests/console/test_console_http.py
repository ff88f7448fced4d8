"""The console's HTTP surface without a browser: the redirect, the page and its headers, every asset
from the package, the traffic stats (unit and end to end, in process), and the rules the assets
keep (nothing fetched from elsewhere, no HTML built from strings)."""

from __future__ import annotations

import re
from importlib import resources
from typing import Any

import httpx

from relaystack.api.app import create_app
from relaystack.config import parse_config
from relaystack.console.stats import TrafficStats
from relaystack.context import RequestContext
from support.inprocess import in_process_app
from support.stack import CHAT_MODEL

STATIC = resources.files("relaystack.console") / "static"


def _assets() -> dict[str, str]:
    found: dict[str, str] = {}

    def walk(folder: Any, prefix: str) -> None:
        for entry in folder.iterdir():
            if entry.is_dir():
                walk(entry, f"{prefix}{entry.name}/")
            elif entry.name.endswith((".js", ".css", ".svg")):
                found[prefix + entry.name] = entry.read_text(encoding="utf-8")

    walk(STATIC, "")
    return found


async def test_root_redirects_and_the_page_carries_strict_headers() -> None:
    async with in_process_app([]) as (_, client):
        root = await client.get("/", follow_redirects=False)
        assert root.status_code == 307 and root.headers["location"] == "/console"
        page = await client.get("/console")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert 'data-auth="off"' in page.text and "{{" not in page.text
        assert "<script>" not in page.text  # nothing inline: the policy forbids it
        again = await client.get("/console", headers={"if-none-match": page.headers["etag"]})
        assert again.status_code == 304
        assert (await client.get("/console/")).status_code == 200
        assert (await client.head("/console")).status_code == 200


async def test_every_asset_is_served_from_the_package_with_its_type() -> None:
    async with in_process_app([]) as (_, client):
        page = (await client.get("/console")).text
        linked = re.findall(r'(?:src|href)="(/console/static/[^"?]+)\?v=[0-9a-f]{8}"', page)
        assert {"/console/static/js/main.js", "/console/static/console.css", "/console/static/theme.js"} <= set(linked)
        types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
        for name in _assets():
            answer = await client.get(f"/console/static/{name}")
            assert answer.status_code == 200, name
            assert answer.headers["content-type"].startswith(types[name[name.rfind("."):]]), name
            assert answer.headers["x-content-type-options"] == "nosniff"
            cached = await client.get(f"/console/static/{name}", headers={"if-none-match": answer.headers["etag"]})
            assert cached.status_code == 304
        for missing in ("nope.js", "../routes.py", "..%2Fstats.py", "js/../../page.html"):
            answer = await client.get(f"/console/static/{missing}")
            assert answer.status_code == 404 and answer.json()["error"]["type"] == "not_found_error", missing


async def test_the_console_is_not_part_of_the_api_and_not_on_the_hot_path() -> None:
    async with in_process_app([]) as (app, client):
        served = app.describe_routes()
        assert not [path for _, path in served if path == "/" or path.startswith("/console")]
        assert not [path for _, path in app._hot if path.startswith("/console")]
        listed = (await client.get("/v1/inspect/routes")).json()["data"]
        assert not [r for r in listed if r["route"].startswith("/console")]


async def test_server_console_false_serves_neither_the_console_nor_the_redirect() -> None:
    config = parse_config({"version": 2, "providers": {"inference": []}, "server": {"console": False},
                           "storage": {"db_path": ":memory:"}}, source="<test>")
    app = create_app(config, environ={})
    assert app.traffic is None
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://relaystack.test") as client:
        for path in ("/", "/console", "/console/static/js/main.js", "/console/api/stats"):
            answer = await client.get(path, follow_redirects=False)
            assert answer.status_code == 404, path
            assert "/v1/" in answer.json()["error"]["message"]


async def test_stats_count_inference_requests_as_they_end() -> None:
    async with in_process_app([]) as (_, client):
        empty = (await client.get("/console/api/stats")).json()
        assert empty["total"]["requests"] == 0 and len(empty["buckets"]) == 90 and empty["bucket_s"] == 10
        chat = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]}
        assert (await client.post("/v1/chat/completions", json=chat)).status_code == 200
        missing = {"model": "together/no-such-model", "messages": [{"role": "user", "content": "hi"}]}
        assert (await client.post("/v1/chat/completions", json=missing)).status_code == 404
        await client.get("/v1/models")  # not an inference request: not counted
        stats = (await client.get("/console/api/stats?window=60")).json()
        assert stats["window_s"] == 60 and len(stats["buckets"]) == 6
        assert stats["total"]["requests"] == 2 and stats["total"]["client_errors"] == 1
        assert stats["total"]["server_errors"] == 0 and stats["total"]["tokens"] > 0
        assert {m["model"] for m in stats["models"]} == {CHAT_MODEL, "together/no-such-model"}
        assert (await client.get("/console/api/stats?window=junk")).json()["window_s"] == 900
        assert (await client.get("/console/api/stats?window=99999")).json()["window_s"] == 3600


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def _ended(clock: _Clock, status: int, latency_s: float, model: str = "m", **usage: int) -> RequestContext:
    ctx = RequestContext("chat", started=clock.now - latency_s)
    ctx.status, ctx.model, ctx.usage = status, model, usage or None
    return ctx


def test_traffic_stats_buckets_errors_and_quantiles() -> None:
    clock = _Clock()
    stats = TrafficStats(bucket_s=10, keep_s=60, clock=clock, monotonic=clock)
    for latency in (0.002, 0.02, 0.03, 0.04, 0.2):
        stats.add(_ended(clock, 200, latency, prompt_tokens=3, completion_tokens=4))
    stats.add(_ended(clock, 503, 0.01))
    stats.add(_ended(clock, 429, 0.01))
    stats.add(_ended(clock, 499, 1.5))
    snapshot = stats.snapshot(60)
    last = snapshot["buckets"][-1]
    assert (last["requests"], last["server_errors"], last["client_errors"], last["cancelled"]) == (8, 1, 1, 1)
    assert last["tokens"] == 35 and last["max_ms"] == 1500.0
    assert 10.0 <= last["p50_ms"] <= 50.0  # the 4th and 5th of 8 are 20 and 30 ms
    assert 250.0 <= last["p95_ms"] <= 1500.0
    assert snapshot["total"]["requests"] == 8 and "start" not in snapshot["total"]
    assert snapshot["models"][0] == {"model": "m", "requests": 8, "errors": 1, "tokens": 35,
                                     "mean_ms": snapshot["models"][0]["mean_ms"]}


def test_traffic_stats_keep_an_hour_and_drop_older_buckets() -> None:
    clock = _Clock()
    stats = TrafficStats(bucket_s=10, keep_s=60, clock=clock, monotonic=clock)
    stats.add(_ended(clock, 200, 0.01))
    clock.now += 30
    stats.add(_ended(clock, 200, 0.01))
    assert [b["requests"] for b in stats.snapshot(60)["buckets"]] == [0, 0, 1, 0, 0, 1]
    clock.now += 45  # the first bucket falls out of the kept minute
    stats.add(_ended(clock, 200, 0.01))
    assert len(stats._buckets) == 2
    assert sum(b["requests"] for b in stats.snapshot(60)["buckets"]) == 2
    assert stats.snapshot(10)["buckets"][-1]["requests"] == 1
    assert stats.snapshot(999_999)["window_s"] == 60  # never more than what is kept


def test_traffic_stats_cap_the_models_they_name() -> None:
    clock = _Clock()
    stats = TrafficStats(clock=clock, monotonic=clock)
    for i in range(300):  # a client chooses model ids: the table stays bounded
        stats.add(_ended(clock, 404, 0.001, model=f"made-up-{i}"))
    models = stats.snapshot()["models"]
    assert len(models) == 201 and models[0] == {**models[0], "model": "(other)", "requests": 100}


def test_assets_fetch_nothing_from_elsewhere_and_never_build_html_from_strings() -> None:
    assets = _assets()
    assert {"js/main.js", "js/api.js", "console.css", "theme.js"} <= set(assets)
    for name, text in assets.items():
        urls = set(re.findall(r"https?://[^\s\"')]+", text)) - {"http://www.w3.org/2000/svg"}
        assert not urls, f"{name} refers to {urls}: the console must work offline"
        if name.endswith(".js"):
            assert not re.search(r"\.(innerHTML|outerHTML)\s*=|insertAdjacentHTML|document\.write", text), name
            assert "eval(" not in text and "new Function" not in text, name
            assert "localStorage.setItem(\"relaystack-console-theme\"" not in text or name == "js/main.js"
            for imported in re.findall(r'from "\./([\w-]+\.js)"', text):
                assert f"js/{imported}" in assets, f"{name} imports {imported}, which is not shipped"


def test_the_admin_key_never_reaches_browser_storage() -> None:
    """The only thing the console keeps in storage is the colour theme."""
    for name, text in _assets().items():
        if not name.endswith(".js"):
            continue
        assert not re.search(r"document\.cookie|sessionStorage\.|indexedDB", text), name
        for call in re.findall(r"localStorage\.setItem\(([^,]+),", text):
            assert call.strip() in ("THEME_KEY", '"relaystack-console-theme"'), (name, call)
