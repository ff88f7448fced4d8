"""``relaystack keys``: a thin client of the admin API (``/v1/admin/keys``, ``/v1/admin/usage``).

The admin key comes from ``--admin-key`` or ``$RELAYSTACK_ADMIN_KEY`` and is only ever sent in
the ``Authorization`` header; the server's URL from ``--url`` or ``$RELAYSTACK_URL``.
"""

from __future__ import annotations

import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import click

__all__ = ["keys"]

_DURATION = re.compile(r"^(\d+)([smhdw]?)$")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


class _Client:
    def __init__(self, url: str, admin_key: str | None) -> None:
        if not admin_key:
            raise click.UsageError("No admin key: pass --admin-key or set RELAYSTACK_ADMIN_KEY.")
        self.url = url.rstrip("/")
        self.admin_key = admin_key

    def call(self, method: str, path: str, body: dict[str, Any] | None = None,
             query: dict[str, str] | None = None) -> Any:
        url = self.url + path + (("?" + urllib.parse.urlencode(query)) if query else "")
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers={
            "Authorization": f"Bearer {self.admin_key}", "Content-Type": "application/json",
        })
        try:
            with urllib.request.urlopen(request, timeout=30, context=ssl.create_default_context()) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                message = json.loads(exc.read())["error"]["message"]
            except Exception:
                message = exc.reason
            raise click.ClickException(f"{exc.code}: {message}") from None
        except urllib.error.URLError as exc:
            raise click.ClickException(f"cannot reach relaystack at {self.url}: {exc.reason}") from None


def _options(function: Any) -> Any:
    function = click.option("--admin-key", envvar="RELAYSTACK_ADMIN_KEY", default=None, show_envvar=True,
                            help="The admin key (never printed).")(function)
    return click.option("--url", envvar="RELAYSTACK_URL", default="http://127.0.0.1:8321", show_default=True,
                        show_envvar=True, help="The relaystack server.")(function)


@click.group()
def keys() -> None:
    """Manage virtual API keys (needs server.auth and the admin key)."""


def _key_fields(function: Any) -> Any:
    for option in reversed([
        click.option("--name"), click.option("--owner"), click.option("--team"),
        click.option("--model", "models", multiple=True, help="Allowed model (repeatable; default: all)."),
        click.option("--provider", "providers", multiple=True, help="Allowed provider (repeatable; default: all)."),
        click.option("--rpm", type=int, help="Requests per minute."),
        click.option("--tpm", type=int, help="Tokens per minute."),
        click.option("--max-concurrent", type=int, help="Requests in flight at once."),
        click.option("--budget", type=float, help="Spend allowed per period, US dollars (requests in flight "
                                                        "hold their estimated cost against it)."),
        click.option("--budget-period", type=click.Choice(["day", "week", "month", "total"]), default=None),
        click.option("--expires-in", help="e.g. 30d, 12h, 3600 (seconds)."),
        click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Metadata (repeatable)."),
    ]):
        function = option(function)
    return function


def _fields(options: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = {k: options[k] for k in ("name", "owner", "team") if options.get(k) is not None}
    for name in ("models", "providers"):
        if options.get(name):
            body[name] = list(options[name])
    limits = {k: options[k] for k in ("rpm", "tpm", "max_concurrent") if options.get(k) is not None}
    if limits:
        body["limits"] = limits
    if options.get("budget") is not None:
        body["budget"] = {"max_usd": options["budget"], "period": options.get("budget_period") or "month"}
    if options.get("expires_in"):
        body["expires_at"] = int(time.time()) + _seconds(options["expires_in"])
    if options.get("meta"):
        body["metadata"] = dict(_pair(item) for item in options["meta"])
    return body


def _seconds(text: str) -> int:
    match = _DURATION.match(text.strip())
    if match is None:
        raise click.BadParameter(f"{text!r}: use a number with s, m, h, d or w (e.g. 30d)", param_hint="--expires-in")
    return int(match.group(1)) * _UNIT_S[match.group(2)]


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--meta")
    return key, value


@keys.command()
@_options
@_key_fields
def create(url: str, admin_key: str | None, **options: Any) -> None:
    """Create a key. Its secret is printed once: store it now."""
    record = _Client(url, admin_key).call("POST", "/v1/admin/keys", _fields(options))
    secret = record.pop("key")
    click.echo(json.dumps(record, indent=2), err=True)
    click.echo("The key (shown once; relaystack keeps only a hash):", err=True)
    click.echo(secret)


@keys.command(name="list")
@_options
@click.option("--json", "as_json", is_flag=True, help="Print the API's JSON.")
@click.option("--status", type=click.Choice(["active", "revoked", "expired"]), default=None)
def list_keys(url: str, admin_key: str | None, as_json: bool, status: str | None) -> None:
    """List keys (never their secrets)."""
    query = {"status": status} if status else None
    data = _Client(url, admin_key).call("GET", "/v1/admin/keys", query=query)["data"]
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    columns = ("id", "status", "name", "owner", "team", "models", "limits", "budget", "expires_at")
    rows = [[_cell(r.get(c)) for c in columns] for r in data]
    widths = [max([len(c)] + [len(row[i]) for row in rows]) for i, c in enumerate(columns)]
    for row in [list(columns), *rows]:
        click.echo("  ".join(value.ljust(widths[i]) for i, value in enumerate(row)).rstrip())


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items() if v is not None) or "-"
    if isinstance(value, list):
        return ",".join(map(str, value))
    return str(value)


@keys.command()
@_options
@click.argument("key_id")
def show(url: str, admin_key: str | None, key_id: str) -> None:
    """Show one key."""
    click.echo(json.dumps(_Client(url, admin_key).call("GET", f"/v1/admin/keys/{key_id}"), indent=2))


@keys.command()
@_options
@click.argument("key_id")
@_key_fields
def update(url: str, admin_key: str | None, key_id: str, **options: Any) -> None:
    """Change the given fields of a key."""
    body = _fields(options)
    if not body:
        raise click.UsageError("Nothing to change: give at least one option.")
    click.echo(json.dumps(_Client(url, admin_key).call("PATCH", f"/v1/admin/keys/{key_id}", body), indent=2))


@keys.command()
@_options
@click.argument("key_id")
def revoke(url: str, admin_key: str | None, key_id: str) -> None:
    """Revoke a key: it fails at once, in every worker."""
    record = _Client(url, admin_key).call("DELETE", f"/v1/admin/keys/{key_id}")
    click.echo(f"{record['id']}: {record['status']}")


@keys.command()
@_options
@click.option("--start", help="First UTC day, YYYY-MM-DD (default: the 1st of this month).")
@click.option("--end", help="Last UTC day (default: today).")
@click.option("--key", "key_id", help="Only this key.")
@click.option("--group-by", default="key,model,day", show_default=True)
def usage(url: str, admin_key: str | None, start: str | None, end: str | None, key_id: str | None,
          group_by: str) -> None:
    """Usage and spend per key, model and day."""
    query = {k: v for k, v in {"start": start, "end": end, "key_id": key_id, "group_by": group_by}.items() if v}
    click.echo(json.dumps(_Client(url, admin_key).call("GET", "/v1/admin/usage", query=query), indent=2))

