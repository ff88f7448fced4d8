"""The console's HTTP surface: the page, its assets, the traffic stats, and ``/`` sending you there.

    GET /                        307 to /console
    GET /console                 the page (one HTML document; its sections are switched by the script)
    GET /console/static/{name}   CSS, JavaScript and icons, read from this package once, at start-up
    GET /console/api/stats       request rate, latency and errors of this process (``stats.py``)

Served by Starlette beside the admin routes, never on the inference hot path. Everything the page
shows it reads from relaystack's public API (``/v1/...``) with the caller's key: the console has
no privileged back door. The page and its assets are public (there is nothing secret in them);
``/console/api/stats`` is admin-only when auth is on.
"""

from __future__ import annotations

import hashlib
import html
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from relaystack import __version__
from relaystack.console.stats import TrafficStats
from relaystack.errors import NotFoundError

__all__ = ["CONSOLE_PATH", "ConsoleFeatures", "ConsoleRoutes"]

CONSOLE_PATH = "/console"
_STATIC = "static"
_CONTENT_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# Nothing inline, nothing from elsewhere: a script injected into a stored conversation could not run.
_PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "font-src 'self'; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}
_MAX_WINDOW_S = 3600


@dataclass(frozen=True, slots=True)
class ConsoleFeatures:
    """What the server has switched on, written into the page so the script knows without asking."""

    auth: bool = False  # server.auth: the console asks for the admin key; the Keys page works
    usage: bool = False  # usage accounting (GET /v1/admin/usage)
    metrics: bool = False  # GET /metrics (Prometheus)
    workers: int = 1


@dataclass(frozen=True, slots=True)
class _Asset:
    body: bytes
    content_type: str
    etag: str


class ConsoleRoutes:
    def __init__(self, stats: TrafficStats, features: ConsoleFeatures) -> None:
        self.stats = stats
        self.features = features
        self.assets = _load_assets()
        self.page = _render_page(features, self.assets)

    def routes(self) -> list[BaseRoute]:
        """Left out of /openapi.json and /v1/inspect/routes: the console is not part of the API."""
        return [
            Route("/", self.root, methods=["GET"], include_in_schema=False),
            Route(CONSOLE_PATH, self.serve_page, methods=["GET"], include_in_schema=False),
            Route(CONSOLE_PATH + "/", self.serve_page, methods=["GET"], include_in_schema=False),
            Route(CONSOLE_PATH + "/static/{name:path}", self.asset, methods=["GET"], include_in_schema=False),
            Route(CONSOLE_PATH + "/api/stats", self.serve_stats, methods=["GET"], include_in_schema=False),
        ]

    async def root(self, request: Request) -> Response:
        return RedirectResponse(CONSOLE_PATH, status_code=307)

    async def serve_page(self, request: Request) -> Response:
        return _cached(request, self.page, _PAGE_HEADERS)

    async def asset(self, request: Request) -> Response:
        found = self.assets.get(request.path_params["name"])
        if found is None:
            raise NotFoundError(f"The console has no file '{request.path_params['name'][:100]}'.")
        return _cached(request, found, {"x-content-type-options": "nosniff", "cache-control": "no-cache"})

    async def serve_stats(self, request: Request) -> Response:
        raw = request.query_params.get("window", "900")
        window = int(raw) if raw.isdigit() else 900
        return Response(orjson.dumps(self.stats.snapshot(min(window, _MAX_WINDOW_S))),
                        media_type="application/json", headers={"cache-control": "no-store"})


def _cached(request: Request, asset: _Asset, headers: dict[str, str]) -> Response:
    """The asset, or 304 when the browser's copy is current (revalidated each time: ``no-cache``)."""
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers={**headers, "etag": asset.etag})
    return Response(asset.body, media_type=asset.content_type, headers={**headers, "etag": asset.etag})


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:20] + '"'


def _load_assets() -> dict[str, _Asset]:
    """Every file under ``static/`` by its relative path, with its type and an ETag."""
    assets: dict[str, _Asset] = {}
    root = resources.files("relaystack.console") / _STATIC

    def walk(folder: Any, prefix: str) -> None:
        for entry in folder.iterdir():
            name = prefix + entry.name
            if entry.is_dir():
                walk(entry, name + "/")
                continue
            suffix = name[name.rfind("."):]
            if suffix in _CONTENT_TYPES:
                body = entry.read_bytes()
                assets[name] = _Asset(body, _CONTENT_TYPES[suffix], _etag(body))

    walk(root, "")
    return assets


def _render_page(features: ConsoleFeatures, assets: dict[str, _Asset]) -> _Asset:
    """The page template with the server's facts filled in (escaped) and each asset's URL
    carrying its ETag, so a browser never runs a stale script against a newer server."""
    template = (resources.files("relaystack.console") / "page.html").read_text(encoding="utf-8")
    values = {
        "version": __version__,
        "auth": "on" if features.auth else "off",
        "usage": "on" if features.usage else "off",
        "metrics": "on" if features.metrics else "off",
        "workers": str(features.workers),
    }
    for name, value in values.items():
        template = template.replace("{{" + name + "}}", html.escape(value, quote=True))
    for name, asset in assets.items():
        template = template.replace("{{asset:" + name + "}}", f"{CONSOLE_PATH}/static/{name}?v={asset.etag[1:9]}")
    if "{{" in template:
        start = template.index("{{")
        raise RuntimeError(f"console page.html: unknown placeholder {template[start:start + 40]!r}")
    body = template.encode()
    return _Asset(body, "text/html; charset=utf-8", _etag(body))
