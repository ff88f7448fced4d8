"""The server keeps freed heap (relaystack.server.heap): set once per process, on glibc only."""

from __future__ import annotations

import platform

import pytest

from relaystack.server import heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc thresholds only")
def test_the_thresholds_are_set_once_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_done", False)
    assert heap.keep_freed_memory()
    assert heap.keep_freed_memory()  # the second call is a flag check
