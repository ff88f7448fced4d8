"""Which key each route needs, checked before any handler runs (and before a body is read).

- open: ``health`` and ``version`` (load balancers and probes carry no key), and the console's
  page and assets (``/``, ``/console``, ``/console/static/...``: the page itself asks for the admin key);
- admin key: ``/v1/admin/*`` (keys, usage), ``/metrics``, ``/console/api/*`` (traffic stats),
  registering or deleting models, and reading stored chat completions (they hold every key's
  conversations);
- any valid key: everything else, inference included.

An unknown route needs a key too, so an unauthenticated caller learns nothing about the API.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any, Literal

from relaystack.errors import PermissionDeniedError
from relaystack.gateway.keygate import SCOPE_KEY, KeyGate
from relaystack.telemetry import current as telemetry

__all__ = ["Guard"]

Need = Literal["open", "key", "admin"]
_NEEDS_MAX = 1024


class Guard:
    def __init__(self, gate: KeyGate, prefixes: Iterable[str]) -> None:
        self.gate = gate
        self.prefixes = tuple(prefixes)
        # llama-stack 0.7 also serves health and version under its admin namespace
        bases = (*self.prefixes, "/v1alpha/admin")
        self._open = frozenset(p + tail for p in bases for tail in ("/health", "/version"))
        self._stored = tuple(p + "/chat/completions" for p in self.prefixes)
        self._models = tuple(p + "/models" for p in self.prefixes)
        self._known = gate.auth.known if gate.auth is not None else None
        self._needs: dict[tuple[str, str], Need] = {}  # (method, path) -> need, as passes() met them

    def _need_of(self, method: str, path: str) -> Need:
        """``need``, remembered: the few routes clients call are looked up, not worked out."""
        need = self._needs.get((method, path))
        if need is None:
            if len(self._needs) >= _NEEDS_MAX:  # clients may send any path
                self._needs.clear()
            need = self._needs[(method, path)] = self.need(method, path)
        return need

    def need(self, method: str, path: str) -> Need:
        if path in self._open:
            return "open"
        if path.startswith("/v1/admin/") or path in ("/v1/admin", "/metrics"):
            return "admin"
        if method in ("POST", "DELETE") and path.startswith(self._models):
            return "admin"
        if method == "GET" and path.startswith(self._stored):
            return "admin"
        if path == "/" or path == "/console" or path.startswith("/console/"):
            # the console's page and assets are public (the page asks for the admin key); its stats are not
            return "admin" if path.startswith("/console/api/") else "open"
        return "key"

    def passes(self, scope: MutableMapping[str, Any]) -> bool:
        """True when the request may go on, known without I/O (a cached key on a route it may
        use); False: await ``check``, which decides and explains."""
        known = self._known
        key = known(scope) if known is not None else None
        if key is None:
            return False
        if not key.is_admin:
            route = (scope["method"], scope["path"])
            need = self._needs.get(route) or self._need_of(*route)
            if need == "admin":
                return False
        scope[SCOPE_KEY] = key
        return True

    async def check(self, scope: MutableMapping[str, Any]) -> None:
        """Raises 401/403 (OpenAI's error shape) unless the request's key may use this route."""
        need = self.need(scope["method"], scope["path"])
        if need == "open":
            return
        key = await self.gate.authenticate(scope)
        if need == "admin" and not key.is_admin:
            telemetry().auth_failure("admin_only")
            raise PermissionDeniedError(
                f"{scope['method']} {scope['path']} needs the admin key (RELAYSTACK_ADMIN_KEY); "
                f"API key {key.id} is not allowed here.",
                code="admin_key_required",
            )
        scope[SCOPE_KEY] = key
