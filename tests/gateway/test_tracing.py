"""server.tracing: one OTLP span per request, child of the client's traceparent, with the model,
provider, status and tokens; nothing is imported or exported when tracing is off."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from aiohttp import web

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from support.server import start_server, write_config
from support.stack import CHAT_MODEL, issue_config

trace_pb2 = pytest.importorskip("opentelemetry.proto.collector.trace.v1.trace_service_pb2")

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


class Collector:
    """A fake OTLP/HTTP collector: keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[object] = []
        self.loop = asyncio.new_event_loop()
        self.port = 0

    def __enter__(self) -> Collector:
        threading.Thread(target=self.loop.run_forever, daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=10)
        return self

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_post("/v1/traces", self._traces)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = self.runner.addresses[0][1]

    async def _traces(self, request: web.Request) -> web.Response:
        message = trace_pb2.ExportTraceServiceRequest()
        message.ParseFromString(await request.read())
        for resource in message.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        return web.Response(body=trace_pb2.ExportTraceServiceResponse().SerializeToString(),
                            content_type="application/x-protobuf")

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)


@pytest.fixture
def collector() -> Iterator[Collector]:
    with Collector() as running:
        yield running


def test_a_request_becomes_a_span_under_the_clients_trace(collector: Collector, tmp_path: Path) -> None:
    fake = FakeTogether((DEFAULT_API_KEY,)).start()
    config = issue_config(api_key=DEFAULT_API_KEY, base_url=fake.base_url)
    config["server"]["tracing"] = {"otlp_endpoint": f"http://127.0.0.1:{collector.port}/v1/traces",
                                   "service_name": "relaystack-test"}
    server = start_server(write_config(tmp_path / "run.yaml", config), home=tmp_path,
                          env={"OTEL_BSP_SCHEDULE_DELAY": "100"})
    try:
        response = httpx.post(server.base_url + "/v1/chat/completions",
                              json={"model": CHAT_MODEL, "messages": [{"role": "user", "content": "hi"}]},
                              headers={"traceparent": f"00-{TRACE_ID}-{PARENT}-01"})
        assert response.status_code == 200
        deadline = time.monotonic() + 30
        chat = None
        while chat is None and time.monotonic() < deadline:
            chat = next((s for s in collector.spans if s.name == "POST /v1/chat/completions"), None)  # type: ignore[attr-defined]
            time.sleep(0.1)
        assert chat is not None, server.log()
        assert chat.trace_id.hex() == TRACE_ID and chat.parent_span_id.hex() == PARENT
        attributes = {a.key: a.value for a in chat.attributes}
        assert attributes["gen_ai.request.model"].string_value == CHAT_MODEL
        assert attributes["relaystack.provider"].string_value == "together"
        assert attributes["http.response.status_code"].int_value == 200
        assert attributes["gen_ai.usage.input_tokens"].int_value > 0
    finally:
        server.stop()
        fake.stop()


def test_tracing_is_not_loaded_when_off() -> None:
    import subprocess
    import sys

    code = ("import sys; from relaystack.cli import load_run_config; from relaystack.api.app import create_app; "
            "create_app(load_run_config(None)); print(any(m.startswith('opentelemetry') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().endswith("False"), out.stderr
