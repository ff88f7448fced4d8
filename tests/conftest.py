"""Shared fixtures: the fake Together (tests/fakes) and real `relaystack run` servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.fake_together import DEFAULT_API_KEY, FakeTogether
from fakes.fixtures import fake_together, fake_together_factory  # noqa: F401  (fixtures)
from support.server import start_server, write_config
from support.stack import Stack, issue_config


@pytest.fixture(params=["c", "python"])
def proof(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test once with the C template proof (``relaystack._textscan``), once with the pure-Python
    one; readers pick theirs when they are made, so make them inside the test."""
    from relaystack import text_template

    if request.param == "c" and text_template.ACCEL is None:
        pytest.skip("the C accelerator is not built (or RELAYSTACK_NO_ACCEL is set)")
    if request.param == "python":
        monkeypatch.setattr(text_template, "ACCEL", None)
    return str(request.param)


def _together_stack(tmp_path_factory: pytest.TempPathFactory, **env: str) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("together-stack")
    fake = FakeTogether((DEFAULT_API_KEY,)).start()
    config = write_config(home / "run.yaml", issue_config())
    server = start_server(config, home=home, env={"TOGETHER_API_KEY": DEFAULT_API_KEY,
                                                  "TOGETHER_BASE_URL": fake.base_url, **env})
    try:
        yield Stack(fake, server, home)
    finally:
        server.stop()
        fake.stop()


@pytest.fixture(scope="module")
def together_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    yield from _together_stack(tmp_path_factory)


@pytest.fixture(scope="module")
def python_proof_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """``together_stack`` with the server on the pure-Python template proof (``RELAYSTACK_NO_ACCEL=1``)."""
    yield from _together_stack(tmp_path_factory, RELAYSTACK_NO_ACCEL="1")


@pytest.fixture(params=["c", "python"])
def either_proof_stack(request: pytest.FixtureRequest) -> Stack:
    """A test through a real server once with each template proof (the server picks C when built)."""
    stack: Stack = request.getfixturevalue("together_stack" if request.param == "c" else "python_proof_stack")
    stack.fake.reset()
    return stack


@pytest.fixture
def stack(together_stack: Stack) -> Stack:
    together_stack.fake.reset()
    return together_stack
