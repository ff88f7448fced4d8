"""Pytest fixtures for the fake Together.

- ``fake_together``: a started ``FakeTogether`` accepting ``DEFAULT_API_KEY``, fresh per test;
  ``fake_together.base_url`` is ``http://127.0.0.1:<port>/v1``.
- ``fake_together_factory(api_keys=(...))``: start more (or differently keyed) fakes in one test;
  all are stopped at teardown.

The fake runs in its own thread, so these are plain (sync) fixtures usable from sync and async
tests alike, and by a ``relaystack run`` subprocess pointed at ``base_url``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from .fake_together import DEFAULT_API_KEY, FakeTogether

__all__ = ["fake_together", "fake_together_factory"]


@pytest.fixture
def fake_together_factory() -> Iterator[Callable[..., FakeTogether]]:
    started: list[FakeTogether] = []

    def start(api_keys: tuple[str, ...] = (DEFAULT_API_KEY,)) -> FakeTogether:
        fake = FakeTogether(api_keys).start()
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()


@pytest.fixture
def fake_together(fake_together_factory: Callable[..., FakeTogether]) -> FakeTogether:
    return fake_together_factory()
