"""The OpenAPI 3.1 document served at ``/openapi.json``.

Written by hand because the hot routes are raw ASGI (no framework to introspect). A test
checks that every route the app serves appears here, so it cannot drift.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from relaystack import __version__

__all__ = ["PREFIXES", "RERANK_PATHS", "openapi_document"]

PREFIXES = ("/v1", "/v1/openai/v1")
# llama-stack serves rerank at /v1alpha (0.3+); its 0.2.x client posts to /v1
RERANK_PATHS = ("/v1alpha/inference/rerank", "/v1/inference/rerank")

_ERROR = {"$ref": "#/components/schemas/Error"}
_OBJ: dict[str, Any] = {"type": "object", "additionalProperties": True}


def _op(summary: str, request: dict[str, Any] | None = None, *, sse: bool = False,
        params: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": _OBJ}}
    if sse:
        content["text/event-stream"] = {"schema": {"type": "string"}}
    op: dict[str, Any] = {
        "summary": summary,
        "responses": {
            "200": {"description": "OK", "content": content},
            "400": {"description": "Bad request", "content": {"application/json": {"schema": _ERROR}}},
            "404": {"description": "Not found", "content": {"application/json": {"schema": _ERROR}}},
        },
    }
    if request is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": request}}}
    if params:
        op["parameters"] = params
    return op


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema}


def _request(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": properties, "additionalProperties": True}


_CHAT = _request(["model", "messages"], {
    "model": {"type": "string"},
    "messages": {"type": "array", "minItems": 1, "items": _OBJ},
    "stream": {"type": "boolean"},
    "store": {"type": "boolean"},
    "tools": {"type": "array", "items": _OBJ},
})
_COMPLETION = _request(["model", "prompt"], {"model": {"type": "string"}, "stream": {"type": "boolean"}})
_EMBEDDINGS = _request(["model", "input"], {
    "model": {"type": "string"},
    "encoding_format": {"type": "string", "enum": ["float", "base64"]},
})
_REGISTER = _request(["model_id"], {
    "model_id": {"type": "string"}, "provider_id": {"type": "string"},
    "provider_model_id": {"type": "string"}, "model_type": {"type": "string", "enum": ["llm", "embedding", "rerank"]},
    "metadata": _OBJ,
})
_RERANK_ITEM = {"oneOf": [{"type": "string"}, _OBJ]}
_RERANK = _request(["model", "query", "items"], {
    "model": {"type": "string"},
    "query": _RERANK_ITEM,
    "items": {"type": "array", "minItems": 1, "items": _RERANK_ITEM},
    "max_num_results": {"type": "integer", "minimum": 1},
})
_RESPONSE = _request(["model", "input"], {
    "model": {"type": "string"},
    "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": _OBJ}]},
    "instructions": {"type": "string"}, "previous_response_id": {"type": "string"},
    "stream": {"type": "boolean"}, "store": {"type": "boolean"}, "tools": {"type": "array", "items": _OBJ},
})
_MESSAGE = _request(["model", "messages", "max_tokens"], {
    "model": {"type": "string"}, "max_tokens": {"type": "integer", "minimum": 1},
    "messages": {"type": "array", "minItems": 1, "items": _OBJ}, "system": {}, "stream": {"type": "boolean"},
    "tools": {"type": "array", "items": _OBJ},
})
_COUNT_TOKENS = _request(["model", "messages"], {"model": {"type": "string"}, "messages": {"type": "array"}})


def _frontend_paths(prefix: str) -> dict[str, Any]:
    """The Responses API (OpenAI errors) and Anthropic's Messages API (Anthropic errors)."""
    response_id = [_path_param("response_id")]
    return {
        f"{prefix}/responses": {
            "post": _op("Create a response (OpenAI Responses API; typed SSE events with stream: true)", _RESPONSE,
                        sse=True),
            "get": _op("List stored responses", params=[
                _query("after", {"type": "string"}), _query("limit", {"type": "integer"}),
                _query("model", {"type": "string"}), _query("order", {"type": "string", "enum": ["asc", "desc"]}),
            ]),
        },
        f"{prefix}/responses/{{response_id}}": {
            "get": _op("Get a stored response", params=response_id),
            "delete": _op("Delete a stored response", params=response_id),
        },
        f"{prefix}/responses/{{response_id}}/input_items": {
            "get": _op("List a stored response's input items (its conversation so far)", params=[
                *response_id, _query("after", {"type": "string"}), _query("before", {"type": "string"}),
                _query("limit", {"type": "integer"}), _query("order", {"type": "string", "enum": ["asc", "desc"]}),
            ]),
        },
        f"{prefix}/responses/{{response_id}}/cancel": {
            "post": _op("Cancel a background response (none run here: 409 for a stored one)", params=response_id),
        },
        f"{prefix}/messages": {
            "post": _op("Create a message (Anthropic Messages API; Anthropic's SSE events with stream: true)",
                        _MESSAGE, sse=True),
        },
        f"{prefix}/messages/count_tokens": {
            "post": _op("Count a message's input tokens (exact for local models, else a labelled estimate)",
                        _COUNT_TOKENS),
        },
    }  # fmt: skip


_BUDGET = {**_OBJ, "description": "{max_usd, period: day|week|month|total}: a request is a 429 budget_exceeded "
                                   "once the period's spend plus what the key's requests in flight hold (their "
                                   "estimated cost) reach max_usd"}
_KEY = _request([], {
    "name": {"type": "string"}, "owner": {"type": "string"}, "team": {"type": "string"}, "metadata": _OBJ,
    "models": {"type": ["array", "null"], "items": {"type": "string"}},
    "providers": {"type": ["array", "null"], "items": {"type": "string"}},
    "limits": _OBJ, "model_limits": _OBJ, "budget": _BUDGET, "expires_at": {"type": ["integer", "null"]},
})


def _gateway_paths() -> dict[str, Any]:
    """The admin API of relaystack.gateway (served when server.auth is on; admin key only)."""
    key_id = [_path_param("key_id")]
    return {
        "/v1/admin/keys": {
            "post": _op("Create a virtual key (server.auth; its secret is in this answer only)", _KEY),
            "get": _op("List virtual keys (never their secrets)", params=[
                _query("owner", {"type": "string"}), _query("team", {"type": "string"}),
                _query("status", {"type": "string", "enum": ["active", "revoked", "expired"]}),
            ]),
        },
        "/v1/admin/keys/{key_id}": {
            "get": _op("Get a virtual key", params=key_id),
            "patch": _op("Change a virtual key's fields", _KEY, params=key_id),
            "post": _op("Change a virtual key's fields (PATCH, for clients without it)", _KEY, params=key_id),
            "delete": _op("Revoke a virtual key (fails at once in every worker)", params=key_id),
        },
        "/v1/admin/usage": {"get": _op("Usage and spend by key, model, provider and day", params=[
            _query("start", {"type": "string", "format": "date"}), _query("end", {"type": "string", "format": "date"}),
            _query("key_id", {"type": "string"}), _query("group_by", {"type": "string"}),
        ])},
        "/metrics": {"get": _op("Prometheus metrics (admin key when server.auth is on)")},
    }


@cache
def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for prefix in PREFIXES:
        paths[f"{prefix}/chat/completions"] = {
            "post": _op("Create a chat completion (JSON or SSE with stream: true)", _CHAT, sse=True),
            "get": _op("List stored chat completions", params=[
                _query("after", {"type": "string"}), _query("limit", {"type": "integer"}),
                _query("model", {"type": "string"}), _query("order", {"type": "string", "enum": ["asc", "desc"]}),
            ]),
        }
        paths[f"{prefix}/chat/completions/{{completion_id}}"] = {
            "get": _op("Get a stored chat completion with its input messages", params=[_path_param("completion_id")]),
        }
        paths[f"{prefix}/completions"] = {"post": _op("Create a text completion", _COMPLETION, sse=True)}
        paths[f"{prefix}/embeddings"] = {"post": _op("Create embeddings", _EMBEDDINGS)}
        paths[f"{prefix}/models"] = {"get": _op("List models"), "post": _op("Register a model", _REGISTER)}
        paths[f"{prefix}/models/{{model_id}}"] = {
            "get": _op("Get a model", params=[_path_param("model_id")]),
            "delete": _op("Unregister a model", params=[_path_param("model_id")]),
        }
        paths[f"{prefix}/providers"] = {"get": _op("List providers (secrets masked)")}
        paths[f"{prefix}/providers/{{provider_id}}"] = {
            "get": _op("Get a provider", params=[_path_param("provider_id")]),
        }
        paths[f"{prefix}/health"] = {"get": _op("Health and readiness")}
        paths[f"{prefix}/version"] = {"get": _op("Server version")}
        paths.update(_frontend_paths(prefix))
    routes = _op("List every route served (llama-stack's inspect API)", params=[
        _query("api_filter", {"type": "string", "enum": ["v1", "v1alpha", "v1beta", "deprecated"]})])
    paths["/v1/inspect/routes"] = {"get": routes}
    # llama-stack 0.7's admin namespace
    paths["/v1alpha/admin/providers"] = {"get": _op("List providers (secrets masked)")}
    paths["/v1alpha/admin/providers/{provider_id}"] = {
        "get": _op("Get a provider", params=[_path_param("provider_id")]),
    }
    paths["/v1alpha/admin/inspect/routes"] = {"get": routes}
    paths["/v1alpha/admin/health"] = {"get": _op("Health and readiness")}
    paths["/v1alpha/admin/version"] = {"get": _op("Server version")}
    for path in RERANK_PATHS:
        paths[path] = {"post": _op(
            'Rerank items by relevance to a query: {"data": [{"index", "relevance_score"}]}, best first', _RERANK,
        )}
    paths.update(_gateway_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "relaystack", "version": __version__},
        "paths": paths,
        "components": {"schemas": {"Error": {
            "type": "object",
            "required": ["error"],
            "properties": {"error": {"type": "object", "required": ["message", "type"], "properties": {
                "message": {"type": "string"}, "type": {"type": "string"},
                "param": {"type": ["string", "null"]}, "code": {"type": ["string", "null"]},
            }}},
        }}},
    }
