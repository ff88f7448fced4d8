"""Fixtures for the gateway tests: a module-wide server with server.auth on."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from gateway_helpers import PROVIDER_KEY, GatewayStack, start_gateway

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayStack]:
    home = tmp_path_factory.mktemp("gateway")
    fake = FakeTogether((PROVIDER_KEY, DEFAULT_API_KEY)).start()
    stack = start_gateway(home, fake)
    try:
        yield stack
    finally:
        stack.server.stop()
        fake.stop()
