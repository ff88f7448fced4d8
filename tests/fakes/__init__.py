"""Fake upstreams on 127.0.0.1 for relaystack's tests (no test may reach the network).

``FakeTogether`` imitates api.together.xyz, quirks included; ``fixtures`` holds its pytest fixtures
(``fake_together``, ``fake_together_factory``). ``tests/`` has no ``__init__.py``, so pytest puts it
on ``sys.path`` and other conftests import them as ``from fakes.fixtures import fake_together``.
"""

from .fake_together import DEFAULT_API_KEY, FakeTogether, ReceivedRequest, running_fake_together

__all__ = ["DEFAULT_API_KEY", "FakeTogether", "ReceivedRequest", "running_fake_together"]
