"""/metrics: what a request, a stream, an upstream failure and the hooks of other layers add up to."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from relaystack import telemetry
from relaystack.context import RequestContext
from relaystack.gateway.metrics import PrometheusTelemetry
from relaystack.local.worker import ModelWorker
from support.server import RunningServer, start_server, write_config
from support.stack import CHAT_MODEL, issue_config


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if match is None or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            total += float(match.group(3))
    return total


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FakeTogether, RunningServer]]:
    """No server.auth: /metrics is open, like most exporters on a private network."""
    home = tmp_path_factory.mktemp("metrics")
    fake = FakeTogether((DEFAULT_API_KEY,)).start()
    server = start_server(write_config(home / "run.yaml", issue_config(api_key=DEFAULT_API_KEY,
                                                                       base_url=fake.base_url)), home=home)
    try:
        yield fake, server
    finally:
        server.stop()
        fake.stop()


def test_requests_latency_ttft_tokens_and_failures(open_server: tuple[FakeTogether, RunningServer]) -> None:
    fake, server = open_server
    url = server.base_url + "/v1/chat/completions"
    body = {"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(3):
        assert httpx.post(url, json=body).status_code == 200
    assert httpx.post(url, json={**body, "stream": True}).status_code == 200
    fake.fail_next(503, path="/v1/chat/completions")
    assert httpx.post(url, json=body).status_code == 503
    fake.cut_stream_after(2)
    assert "error" in httpx.post(url, json={**body, "stream": True}).text
    assert httpx.post(url, json={**body, "model": "nope"}).status_code == 404
    text = httpx.get(server.base_url + "/metrics").text
    chat = {"route": "/v1/chat/completions", "model": CHAT_MODEL, "provider": "together"}
    assert value(text, "relaystack_requests_total", **chat, status="200") == 4
    assert value(text, "relaystack_requests_total", **chat, status="503") == 1
    assert value(text, "relaystack_requests_total", route="/v1/chat/completions", model="", status="404") == 1
    assert value(text, "relaystack_request_duration_seconds_count", **chat) >= 5
    assert value(text, "relaystack_time_to_first_token_seconds_count", model=CHAT_MODEL, provider="together") >= 1
    assert value(text, "relaystack_tokens_total", model=CHAT_MODEL, kind="prompt") >= 4 * 11
    assert value(text, "relaystack_tokens_total", model=CHAT_MODEL, kind="completion") > 0
    assert value(text, "relaystack_upstream_errors_total", provider="together", status="503") == 1
    assert value(text, "relaystack_stream_failures_total", provider="together") == 1
    assert 'model="nope"' not in text  # a 404's model is the client's free text, never a label
    assert value(text, "relaystack_requests_total", route="/v1/health") >= 1  # Starlette routes too


def test_hooks_for_the_router_streams_and_store() -> None:
    metrics = PrometheusTelemetry()
    metrics.retry("together", "m", "429")
    metrics.fallback("m", "together", "openai")
    metrics.cooldown("together", "m", 30.0)
    metrics.store_failure("stream")
    metrics.rate_limited("rpm")
    metrics.auth_failure("revoked")
    text = metrics.render().decode()
    assert value(text, "relaystack_retries_total", provider="together", model="m", reason="429") == 1
    assert value(text, "relaystack_fallbacks_total", from_provider="together", to_provider="openai") == 1
    assert value(text, "relaystack_cooldowns_total", provider="together") == 1
    assert value(text, "relaystack_store_failures_total", operation="stream") == 1
    assert value(text, "relaystack_rate_limited_total", reason="rpm") == 1
    assert value(text, "relaystack_auth_failures_total", reason="revoked") == 1


def test_the_default_telemetry_does_nothing_and_is_replaced_by_install() -> None:
    before = telemetry.current()
    try:
        telemetry.Telemetry().retry("p", "m", "x")  # the no-op base
        metrics = PrometheusTelemetry()
        telemetry.install(metrics)
        telemetry.current().store_failure("usage")
        assert value(metrics.render().decode(), "relaystack_store_failures_total", operation="usage") == 1
    finally:
        telemetry.install(before)


def test_model_labels_are_bounded() -> None:
    metrics = PrometheusTelemetry()
    for index in range(600):
        ctx = RequestContext("chat", model=f"together/m{index}", provider_id="together", status=200)
        metrics.request_done("/v1/chat/completions", ctx)
    text = metrics.render().decode()
    assert value(text, "relaystack_requests_total", model="other") == 100


def test_times_to_first_token_are_tallied_then_flushed_into_the_histogram() -> None:
    metrics = PrometheusTelemetry()
    ctx = RequestContext("chat", model="together/m", provider_id="together", status=200)
    for seconds in (0.02, 0.02, 0.3):
        metrics.first_token(ctx, seconds)
    metrics.first_token(RequestContext("chat", model="nope", status=404), 0.001)  # no provider: no model label
    text = metrics.render().decode()
    labels = {"model": "together/m", "provider": "together"}
    assert value(text, "relaystack_time_to_first_token_seconds_count", **labels) == 3
    assert value(text, "relaystack_time_to_first_token_seconds_bucket", **labels, le="0.025") == 2
    assert value(text, "relaystack_time_to_first_token_seconds_bucket", **labels, le="0.25") == 2
    assert value(text, "relaystack_time_to_first_token_seconds_bucket", **labels, le="0.5") == 3
    assert value(text, "relaystack_time_to_first_token_seconds_sum", **labels) == pytest.approx(0.34)
    assert value(text, "relaystack_time_to_first_token_seconds_count", model="", provider="") == 1
    metrics.first_token(ctx, 0.02)  # the next flush adds to what the last one wrote
    assert value(metrics.render().decode(), "relaystack_time_to_first_token_seconds_count", **labels) == 4


def test_local_model_queue_depth_and_state(tmp_path: Path) -> None:
    worker: ModelWorker[object] = ModelWorker("tiny", load=object)
    assert worker.queue_depth == 0 and worker.state == "not_loaded"
    loading = SimpleNamespace(model_id="local/a", worker=SimpleNamespace(state="loading", queue_depth=3))
    failed = SimpleNamespace(model_id="local/b", worker=SimpleNamespace(state="failed: no weights", queue_depth=0))
    text = PrometheusTelemetry([loading, failed, object()]).render().decode()
    assert value(text, "relaystack_local_model_queue_depth", model="local/a") == 3
    assert value(text, "relaystack_local_model_state", model="local/a", state="loading") == 1
    assert value(text, "relaystack_local_model_state", model="local/a", state="ready") == 0
    assert value(text, "relaystack_local_model_state", model="local/b", state="failed") == 1
    assert "no weights" not in text


def test_the_routers_own_counts_are_exported_as_deltas() -> None:
    from relaystack.router.stats import RouterStats

    stats = RouterStats()
    metrics = PrometheusTelemetry(router_stats=stats)
    stats.count("m", "primary", "attempt")
    stats.count("m", "primary", "failure")
    stats.count("m", "backup", "fallback")
    text = metrics.render().decode()
    assert value(text, "relaystack_router_events_total", model="m", deployment="primary", event="attempt") == 1
    assert value(text, "relaystack_router_events_total", deployment="backup", event="fallback") == 1
    stats.count("m", "primary", "attempt")
    text = metrics.render().decode()
    assert value(text, "relaystack_router_events_total", model="m", deployment="primary", event="attempt") == 2
