"""JSON in and out of the Starlette routes (the admin API, the gateway's admin API, stored responses).

A leaf module beside ``errors.py`` so that ``api/`` and ``gateway/`` (which may not import ``api/``)
read a request body and answer the same way: one wording of a malformed body's 400, one content type.
The raw hot path (``api/asgi.py``) parses with ``json_object`` too, and also refuses an empty body.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from relaystack.errors import InvalidRequestError

__all__ = ["json_object", "json_response", "read_json_object"]


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data), status_code=status, media_type="application/json")


async def read_json_object(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object; an empty body is ``{}`` (a PATCH that changes nothing)."""
    return json_object(await request.body())


def json_object(raw: bytes) -> dict[str, Any]:
    """``raw`` parsed as a JSON object, or a 400 that says where it went wrong and what was sent."""
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidRequestError(f"The request body is not valid JSON: {exc.msg} (at byte {exc.pos}).") from None
    if not isinstance(data, dict):
        raise InvalidRequestError(f"The request body must be a JSON object, not {type(data).__name__}.")
    return data
