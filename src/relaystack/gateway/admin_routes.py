"""The admin API: virtual keys (create, list, show, update, revoke) and usage reports.

Only the admin key reaches these (``guard.py``). A key's secret is in the create answer and
nowhere else: the store holds its HMAC, and no other answer shows even that.

    POST   /v1/admin/keys              create; the answer's "key" is shown this once
    GET    /v1/admin/keys              list (?owner=, ?team=, ?status=active|revoked|expired)
    GET    /v1/admin/keys/{id}         one key
    PATCH  /v1/admin/keys/{id}         change the fields given (POST works too)
    DELETE /v1/admin/keys/{id}         revoke: fails at once in every worker; the record stays
    GET    /v1/admin/usage             usage and spend (?start=, ?end=, ?key_id=, ?group_by=key,model,day)

A key's ``budget`` ({"max_usd", "period": day|week|month|total}) is checked when a request is
admitted, against the period's spend plus what the key's requests in flight hold (their estimated
cost, ``holds.py``): a key past it gets 429 ``budget_exceeded``. Spend can pass the budget by the
last admitted request's cost and what the estimates fell short, plus, with several workers or
instances, what the others have in flight and spent in the last second.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from relaystack.errors import InvalidRequestError, NotFoundError, NotImplementedYetError
from relaystack.gateway.auth import Authenticator
from relaystack.gateway.keys import KeyFields, new_key, public_record
from relaystack.gateway.usage import utc_day
from relaystack.json_routes import json_response, read_json_object
from relaystack.storage.base import KeyStore, UsageRow

__all__ = ["KeyAdminRoutes"]

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_GROUPS = ("day", "key", "model", "provider", "owner", "team")
_SUMS = ("requests", "prompt_tokens", "completion_tokens", "cached_tokens")


class KeyAdminRoutes:
    """Mounted always, so the routes are the same with and without ``server.auth``; without it
    (or without a store that keeps keys) the key routes answer 501 naming the setting."""

    def __init__(
        self, store: KeyStore | None, auth: Authenticator | None,
        on_change: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        """``on_change``: awaited after each committed key write (broadcasts it to other instances)."""
        self._store = store
        self._auth = auth
        self._on_change = on_change

    @property
    def store(self) -> KeyStore:
        if self._store is None:
            raise NotImplementedYetError(
                "This store does not keep virtual keys and usage; use SQLite or PostgreSQL for server.auth."
            )
        return self._store

    @property
    def auth(self) -> Authenticator:
        if self._auth is None:
            raise NotImplementedYetError(
                "Virtual keys need server.auth in the run config (and RELAYSTACK_ADMIN_KEY): see README, "
                "'Sharing relaystack with a team'."
            )
        return self._auth

    def routes(self) -> list[BaseRoute]:
        table: list[tuple[str, Handler, list[str]]] = [
            ("/v1/admin/keys", self.create, ["POST"]),
            ("/v1/admin/keys", self.list, ["GET"]),
            ("/v1/admin/keys/{key_id}", self.show, ["GET"]),
            ("/v1/admin/keys/{key_id}", self.update, ["PATCH", "POST"]),
            ("/v1/admin/keys/{key_id}", self.revoke, ["DELETE"]),
            ("/v1/admin/usage", self.usage, ["GET"]),
        ]
        return [Route(path, handler, methods=methods) for path, handler, methods in table]

    # -- keys ---------------------------------------------------------------------------------
    async def create(self, request: Request) -> Response:
        fields, _ = KeyFields.parse(await read_json_object(request), partial=False)
        key_id, token = new_key()
        now = int(time.time())
        record = {
            "id": key_id,
            **fields.model_dump(mode="json"),
            "created_at": now,
            "updated_at": now,
            "revoked_at": None,
            "secret_hash": self.auth.hash(token),
        }
        await self._put(record)
        return json_response({**public_record(record), "key": token}, 201)

    async def list(self, request: Request) -> Response:
        self.auth  # noqa: B018 - raises 501 when server.auth is off
        query = request.query_params
        shown = [public_record(r) for r in await self.store.list_keys()]
        for name in ("owner", "team", "status"):
            if (wanted := query.get(name)) is not None:
                shown = [r for r in shown if r.get(name) == wanted]
        return json_response({"object": "list", "data": shown})

    async def show(self, request: Request) -> Response:
        return json_response(public_record(await self._record(request)))

    async def update(self, request: Request) -> Response:
        record = await self._record(request)
        fields, given = KeyFields.parse(await read_json_object(request), partial=True)
        values = fields.model_dump(mode="json")
        record.update({name: values[name] for name in given})
        record["updated_at"] = int(time.time())
        await self._put(record)
        return json_response(public_record(record))

    async def revoke(self, request: Request) -> Response:
        record = await self._record(request)
        if not record.get("revoked_at"):
            record["revoked_at"] = record["updated_at"] = int(time.time())
            await self._put(record)
        return json_response(public_record(record))

    async def _put(self, record: dict[str, Any]) -> None:
        await self.store.put_key(record)
        if self._on_change is not None:
            await self._on_change()

    async def _record(self, request: Request) -> dict[str, Any]:
        self.auth  # noqa: B018 - raises 501 when server.auth is off
        key_id = request.path_params["key_id"]
        record = await self.store.get_key(key_id)
        if record is None:
            raise NotFoundError(
                f"No key with id '{key_id}' (ids look like key-0123456789ab; GET /v1/admin/keys lists them).",
                param="key_id", code="key_not_found",
            )
        return record

    # -- usage --------------------------------------------------------------------------------
    async def usage(self, request: Request) -> Response:
        query = request.query_params
        today = utc_day()
        start = _day_param(query.get("start"), "start", today[:8] + "01")
        end = _day_param(query.get("end"), "end", today)
        groups = [g.strip() for g in (query.get("group_by") or "key,model,day").split(",") if g.strip()]
        if unknown := [g for g in groups if g not in _GROUPS]:
            raise InvalidRequestError(
                f"Invalid 'group_by': {unknown}. Choose from {list(_GROUPS)}, comma-separated.", param="group_by"
            )
        rows = await self.store.usage_totals(since=start, until=end, key_id=query.get("key_id") or None)
        keys = {r["id"]: r for r in await self.store.list_keys()} if {"owner", "team"} & set(groups) else {}
        data = _group(rows, groups, keys)
        total = _group(rows, [], keys)
        return json_response({
            "object": "usage", "start": start, "end": end, "group_by": groups, "data": data,
            "total": total[0] if total else _empty_total(),
        })


def _group(rows: list[UsageRow], groups: list[str], keys: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    for row in rows:
        record = keys.get(row.key_id, {})
        values = {"day": row.day, "key": row.key_id, "model": row.model, "provider": row.provider,
                  "owner": record.get("owner"), "team": record.get("team")}
        where = tuple(values[g] for g in groups)
        entry = out.get(where)
        if entry is None:
            entry = out[where] = {("key_id" if g == "key" else g): values[g] for g in groups} | _empty_total()
        for name in _SUMS:
            entry[name] += getattr(row, name)
        entry["total_tokens"] += row.prompt_tokens + row.completion_tokens
        entry["cost_usd"] = round(entry["cost_usd"] + row.cost, 10)
    return list(out.values())


def _empty_total() -> dict[str, Any]:
    return {name: 0 for name in _SUMS} | {"total_tokens": 0, "cost_usd": 0.0}


def _day_param(value: str | None, name: str, default: str) -> str:
    if value is None or value == "":
        return default
    if not _DAY.match(value):
        raise InvalidRequestError(f"Invalid '{name}': {value!r}. Use a UTC day, YYYY-MM-DD.", param=name)
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidRequestError(f"Invalid '{name}': {value!r} is not a calendar day.", param=name) from None
    return value
