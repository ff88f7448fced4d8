"""Every front-end route the app serves is in the OpenAPI document, with its method."""

from __future__ import annotations

from starlette.routing import Route

from relaystack.api.app import create_app
from relaystack.api.openapi import openapi_document
from relaystack.config import RunConfig


def test_every_front_end_route_is_documented() -> None:
    app = create_app(RunConfig.model_validate({"version": 2, "storage": {"db_path": ":memory:"}}), environ={})
    served = {(method, path) for method, path in app._hot if "/responses" in path or "/messages" in path}
    for route in app._admin.routes:
        if isinstance(route, Route) and "/responses" in route.path:
            served |= {(method, route.path) for method in route.methods or () if method != "HEAD"}
    paths = openapi_document()["paths"]
    missing = sorted((m, p) for m, p in served if m.lower() not in paths.get(p, {}))
    assert len(served) == 2 * 8 and not missing, missing
