"""Who is calling: the admin key, a virtual key, or nobody (401).

Keys are read from ``Authorization: Bearer <key>`` or ``x-api-key: <key>`` (Anthropic's SDK).
Each process caches the key records it has seen; every check first asks the store for its
``keys_version()`` (no I/O unless some process wrote), and any change empties the cache, so a
key revoked through one worker fails at once in all of them. No error ever repeats the key.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import MutableMapping
from typing import Any

from relaystack.errors import AuthenticationError
from relaystack.gateway.keys import _TOKEN_LENGTH, ADMIN, KeyInfo, hash_key, key_id_of
from relaystack.gateway.settings import Limits
from relaystack.storage.base import KeyStore
from relaystack.telemetry import current as telemetry

__all__ = ["Authenticator", "presented_key"]

_CACHE_MAX = 10_000


class _Unknown:
    pass


_UNKNOWN = _Unknown()
# a cached key is re-read at least this often even when no change was signalled (belt and braces)
_REVALIDATE_S = 30.0


def presented_key(scope: MutableMapping[str, Any]) -> str | None:
    """The key the request carries, or None."""
    api_key = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                return token.strip()
        elif name == b"x-api-key":
            api_key = bytes(value).decode("latin-1").strip() or None
    return api_key


class Authenticator:
    def __init__(self, store: KeyStore, secret: bytes, admin_key: str, default_limits: Limits) -> None:
        self._store = store
        self._secret = secret
        self._admin = admin_key.encode()
        self._defaults = default_limits
        self._cache: dict[str, tuple[KeyInfo | None, float]] = {}  # key id -> (key, when read)
        self._version: int | None = None
        # id (12 hex, bytes) -> (the key last verified against its HMAC, its record, when read):
        # a key presented again is compared with it in constant time instead of hashed again
        self._verified: dict[bytes, tuple[bytes, KeyInfo, float]] = {}

    def hash(self, token: str) -> str:
        return hash_key(self._secret, token)

    def known(self, scope: MutableMapping[str, Any]) -> KeyInfo | None:
        """The request's key when it can be told without I/O and it is valid: the admin key, or a
        cached, live virtual key whose HMAC matches. None otherwise (then ``authenticate`` decides
        and explains). The hot path: one pass over the headers, one HMAC, no coroutine."""
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                if value[:7].lower() == b"bearer ":
                    token = bytes(value[7:]).strip()
                    break
            elif name == b"x-api-key":
                token = bytes(value).strip()
        if not token:
            return None
        if hmac.compare_digest(token, self._admin):
            return ADMIN
        if len(token) != _TOKEN_LENGTH or token[:4] != b"rsk-":
            return None
        if self._store.keys_version() != self._version:
            return None
        hit = self._verified.get(token[4:16])
        # the key this process last verified for that id: compared in constant time
        if hit is None or not hmac.compare_digest(token, hit[0]) or time.monotonic() - hit[2] >= _REVALIDATE_S:
            return None
        info = hit[1]
        if info.expires_at is not None and info.expires_at <= time.time():
            return None
        return info

    async def authenticate(self, scope: MutableMapping[str, Any]) -> KeyInfo:
        token = presented_key(scope)
        if token is None:
            telemetry().auth_failure("missing")
            raise AuthenticationError(
                "Missing API key. Send it as `Authorization: Bearer <key>` (or `x-api-key: <key>`); "
                "an admin issues keys with `relaystack keys create`.",
                code="missing_api_key",
            )
        if hmac.compare_digest(token.encode(), self._admin):
            return ADMIN
        key_id = key_id_of(token)
        info: KeyInfo | None = None
        if key_id is not None:
            cached = self._cached(key_id)
            info = await self._load(key_id) if isinstance(cached, _Unknown) else cached
        if info is None or not hmac.compare_digest(self.hash(token).encode(), info.secret_hash):
            telemetry().auth_failure("invalid")
            raise AuthenticationError("Invalid API key.", code="invalid_api_key")
        if not info.revoked and (info.expires_at is None or info.expires_at > time.time()):
            self._remember(token, info)
        if info.revoked:
            telemetry().auth_failure("revoked")
            raise AuthenticationError(f"API key {info.id} was revoked.", code="key_revoked")
        if info.expires_at is not None and info.expires_at <= time.time():
            telemetry().auth_failure("expired")
            raise AuthenticationError(
                f"API key {info.id} expired at {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(info.expires_at))}.",
                code="key_expired",
            )
        return info

    def _remember(self, token: str, info: KeyInfo) -> None:
        hit = self._cache.get(info.id)
        if hit is None or hit[0] is not info:  # only what the current cache holds
            return
        if len(self._verified) >= _CACHE_MAX:
            self._verified.clear()
        self._verified[token[4:16].encode()] = (token.encode(), info, hit[1])

    def _cached(self, key_id: str) -> KeyInfo | _Unknown | None:
        """The cached key (None: known not to exist), or ``_UNKNOWN`` when it must be read."""
        version = self._store.keys_version()
        if version != self._version:
            self._cache.clear()
            self._verified.clear()
            self._version = version
            return _UNKNOWN
        hit = self._cache.get(key_id)
        if hit is None or time.monotonic() - hit[1] >= _REVALIDATE_S:
            return _UNKNOWN
        return hit[0]

    async def _load(self, key_id: str) -> KeyInfo | None:
        version = self._version
        now = time.monotonic()
        record = await self._store.get_key(key_id)
        info = KeyInfo.from_record(record, self._defaults) if record is not None else None
        if self._store.keys_version() == version:  # nothing changed while reading: safe to keep
            if len(self._cache) >= _CACHE_MAX:
                self._cache.clear()
            self._cache[key_id] = (info, now)
        return info
