"""Whose stored object is it: the key that created it (``server.auth`` on).

A stored response records the id of the key that created it. A virtual key reads, continues,
lists and deletes only its own; the admin key sees every one; with auth off there are no keys
and no owners. The guard leaves the request's key in the ASGI scope before any handler runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from relaystack.gateway.keygate import SCOPE_KEY

__all__ = ["owner_to_read", "owner_to_record"]


def owner_to_record(scope: Mapping[str, Any]) -> str | None:
    """The owner a new stored object gets: the caller's key id (None with auth off)."""
    key = scope.get(SCOPE_KEY)
    return None if key is None else str(key.id)


def owner_to_read(scope: Mapping[str, Any]) -> str | None:
    """The owner a read is limited to: the caller's key id; None (everything) for the admin key
    or with auth off."""
    key = scope.get(SCOPE_KEY)
    return None if key is None or key.is_admin else str(key.id)
