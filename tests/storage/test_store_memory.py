"""MemoryStore lifecycle (its contract runs in test_store_contract.py)."""

from __future__ import annotations

import pytest
from store_helpers import completion, messages

from relaystack.storage._common import StoreClosedError
from relaystack.storage.memory import MemoryStore


async def test_memory_store_lifecycle() -> None:
    store = MemoryStore()
    with pytest.raises(StoreClosedError, match="not started"):
        await store.put_completion(completion("x"), messages())
    await store.start()
    with pytest.raises(RuntimeError, match="twice"):
        await store.start()
    await store.put_completion(completion("x"), messages())
    await store.stop()
    with pytest.raises(StoreClosedError, match="stopped"):
        await store.put_model({"identifier": "m"})
    with pytest.raises(StoreClosedError, match="stopped"):
        await store.list_completions()
