"""The APIs of the fake clouds (see fake_clouds.py): listings, chat, completions, embeddings, rerank."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aiohttp import web

from .cloud_bodies import CREATED, chat_chunks, chat_response, completion_response, embedding_vector, sse

if TYPE_CHECKING:
    from .fake_clouds import FakeClouds

# APIs without /completions (a call there is a relaystack bug: the fake answers 404)
NO_COMPLETIONS = frozenset({"anthropic", "gemini", "vertexai", "bedrock", "databricks", "llama-openai-compat",
                            "oci", "watsonx"})
NO_EMBEDDINGS = frozenset({"anthropic", "vertexai", "bedrock", "cerebras", "groq", "llama-openai-compat"})
_API_ROOT = {"databricks": "/serving-endpoints", "oci": "/actions/v1", "vllm": "/v1"}


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                        "code": None}}, status=status)


async def serve(fake: FakeClouds, name: str, request: web.Request, body: bytes, rest: str) -> web.StreamResponse:
    from .fake_clouds import CHAT_MODELS, EMBEDDING_MODELS, RERANK_MODELS

    data = json.loads(body) if body else None
    if name == "watsonx":
        return await _watsonx(fake, request, data, rest)
    if rest == "/rerank" and name == "vllm":
        return _vllm_rerank(data, RERANK_MODELS[name])
    if rest == "/ranking" and name == "nvidia":
        return _nim_ranking(data, RERANK_MODELS[name])
    api = rest.removeprefix(_API_ROOT.get(name, ""))
    if request.method == "GET" and (api == "/models" or rest == "/api/2.0/serving-endpoints"):
        return _listing(name, request, CHAT_MODELS[name], EMBEDDING_MODELS.get(name))
    if api == "/chat/completions":
        return await _chat(name, request, data, CHAT_MODELS[name])
    if api == "/completions" and name not in NO_COMPLETIONS:
        if not isinstance(data, dict) or data.get("model") != CHAT_MODELS[name]:
            return _bad("model not found", 404)
        return web.json_response(completion_response(name, data["model"]))
    if api == "/embeddings" and name not in NO_EMBEDDINGS:
        return _embeddings(name, data, EMBEDDING_MODELS[name])
    return _bad(f"{request.method} {request.path} is not part of this API", 404)


def _listing(name: str, request: web.Request, chat: str, embedding: tuple[str, int] | None) -> web.Response:
    ids = [chat] + ([embedding[0]] if embedding else [])
    if name in ("bedrock", "vertexai"):
        return _bad("no such route", 404)
    if name == "azure":
        return web.json_response({"object": "list", "data": [
            {"id": chat, "object": "model", "created_at": CREATED, "status": "succeeded",
             "capabilities": {"chat_completion": True, "completion": False, "embeddings": False}},
            {"id": ids[1], "object": "model", "created_at": CREATED, "status": "succeeded",
             "capabilities": {"chat_completion": False, "completion": False, "embeddings": True}},
        ]})
    if name == "anthropic":
        limit = int(request.query.get("limit", "20"))
        models = [{"type": "model", "id": m, "display_name": m, "created_at": "2025-09-29T00:00:00Z"}
                  for m in (chat, "claude-haiku-4-5")]
        after = request.query.get("after_id")
        start = next((i + 1 for i, m in enumerate(models) if m["id"] == after), 0)
        page = models[start:start + limit]
        return web.json_response({"data": page, "has_more": start + limit < len(models),
                                  "first_id": page[0]["id"] if page else None,
                                  "last_id": page[-1]["id"] if page else None})
    if name == "databricks":
        return web.json_response({"endpoints": [
            {"name": chat, "task": "llm/v1/chat", "state": {"ready": "READY"}},
            {"name": ids[1], "task": "llm/v1/embeddings", "state": {"ready": "READY"}},
            {"name": "some-custom-model", "task": "", "state": {"ready": "NOT_READY"}},
        ]})
    if name == "oci":
        return web.json_response({"items": [
            {"displayName": chat, "capabilities": ["CHAT"], "lifecycleState": "ACTIVE"},
            {"displayName": ids[1], "capabilities": ["TEXT_EMBEDDINGS"], "lifecycleState": "ACTIVE"},
            {"displayName": "cohere.command-r-16k", "capabilities": ["CHAT"], "lifecycleState": "ACTIVE",
             "timeDeprecated": "2025-01-01T00:00:00Z"},
        ]})
    if name in ("vllm", "nvidia"):  # a self-hosted NIM or vLLM lists its reranker like any model
        from .fake_clouds import RERANK_MODELS

        ids.append(RERANK_MODELS[name])
    if name == "vllm":
        return web.json_response({"object": "list", "data": [
            {"id": i, "object": "model", "created": CREATED, "owned_by": "vllm", "max_model_len": 8192} for i in ids]})
    return web.json_response({"object": "list", "data": [
        {"id": i, "object": "model", "created": CREATED, "owned_by": name} for i in ids]})


async def _chat(name: str, request: web.Request, data: Any, model: str) -> web.StreamResponse:
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        return _bad("messages is required")
    if data.get("model") != model:
        return _bad(f"The model `{data.get('model')}` does not exist", 404)
    if name == "bedrock" and "stream_options" in data:
        return _bad("stream_options: Extra inputs are not permitted")
    for message in data["messages"]:
        for part in message.get("content") if isinstance(message.get("content"), list) else []:
            url = (part.get("image_url") or {}).get("url", "") if isinstance(part, dict) else ""
            if name in ("sambanova", "gemini") and url and not url.startswith("data:"):
                return _bad("image_url must be a base64 data URL")
    options = data.get("stream_options") or {}
    if data.get("stream") is not True:
        extra: dict[str, Any] = {}
        response = chat_response(name, model, **extra)
        if name == "bedrock":
            response["choices"][0]["message"]["reasoning"] = "Let me think."
        return web.json_response(response)
    chunks = chat_chunks(name, model, usage_every_chunk=name == "gemini",
                         include_usage=options.get("include_usage") is True,
                         delta_extra={"reasoning": "thinking"} if name == "bedrock" else None)
    return await _stream(request, sse(chunks))


async def _stream(request: web.Request, payload: bytes) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for event in payload.split(b"\n\n")[:-1]:
        await response.write(event + b"\n\n")
    await response.write_eof()
    return response


def _embeddings(name: str, data: Any, model: tuple[str, int]) -> web.Response:
    if not isinstance(data, dict) or data.get("model") != model[0]:
        return _bad("model not found", 404)
    if name == "nvidia" and data.get("input_type") not in ("query", "passage"):
        return _bad("input_type must be 'query' or 'passage' for an asymmetric model")
    given = data.get("input")
    inputs = [given] if isinstance(given, str) else list(given or [])
    response: dict[str, Any] = {
        "object": "list", "model": model[0],
        "data": [{"object": "embedding", "index": i, "embedding": embedding_vector(str(t), model[1])}
                 for i, t in enumerate(inputs)],
    }
    if name != "gemini":  # Gemini's OpenAI endpoint answers without usage
        response["usage"] = {"prompt_tokens": 3 * len(inputs), "total_tokens": 3 * len(inputs)}
    return web.json_response(response)


def _relevance(query: str, text: str) -> float:
    words = set(query.lower().split())
    return round(len(words & set(text.lower().split())) / (len(words) or 1), 4)


def _vllm_rerank(data: Any, model: str) -> web.Response:
    if not isinstance(data, dict) or data.get("model") != model or not isinstance(data.get("documents"), list):
        return _bad("model, query and documents are required")
    scored = sorted(((i, _relevance(data["query"], d)) for i, d in enumerate(data["documents"])),
                    key=lambda p: -p[1])[: data.get("top_n") or None]
    return web.json_response({"id": "rerank-1", "model": model, "usage": {"total_tokens": 10}, "results": [
        {"index": i, "document": {"text": data["documents"][i]}, "relevance_score": s} for i, s in scored]})


def _nim_ranking(data: Any, model: str) -> web.Response:
    if not isinstance(data, dict) or data.get("model") != model or not isinstance(data.get("passages"), list):
        return _bad("model, query and passages are required")
    query = data["query"]["text"]
    scored = sorted(((i, _relevance(query, p["text"]) * 10 - 5) for i, p in enumerate(data["passages"])),
                    key=lambda p: -p[1])
    return web.json_response({"rankings": [{"index": i, "logit": s} for i, s in scored]})


async def _watsonx(fake: FakeClouds, request: web.Request, data: Any, rest: str) -> web.StreamResponse:
    from .fake_clouds import CHAT_MODELS, EMBEDDING_MODELS

    if not request.query.get("version"):
        return fake._error("watsonx", 400, "Missing query parameter: version")
    chat, (embed, dimension) = CHAT_MODELS["watsonx"], EMBEDDING_MODELS["watsonx"]
    if rest == "/ml/v1/foundation_model_specs" and request.method == "GET":
        return web.json_response({"total_count": 2, "limit": 200, "resources": [
            {"model_id": chat, "label": "granite", "functions": [{"id": "text_generation"}, {"id": "text_chat"}],
             "model_limits": {"max_sequence_length": 131072}},
            {"model_id": embed, "label": "granite-embedding", "functions": [{"id": "embedding"}],
             "model_limits": {"max_sequence_length": 512, "embedding_dimension": dimension}},
        ]})
    if not isinstance(data, dict) or data.get("project_id") != "wx-project-1":
        return fake._error("watsonx", 400, "project_id or space_id is required")
    if rest == "/ml/v1/text/embeddings":
        if data.get("model_id") != embed or not isinstance(data.get("inputs"), list):
            return fake._error("watsonx", 400, "model_id and inputs are required")
        return web.json_response({"model_id": embed, "created_at": "2025-01-01T00:00:00Z",
                                  "input_token_count": 3 * len(data["inputs"]),
                                  "results": [{"embedding": embedding_vector(t, dimension)} for t in data["inputs"]]})
    if rest in ("/ml/v1/text/generation", "/ml/v1/text/generation_stream"):
        return await _watsonx_generation(fake, request, data, chat, streamed=rest.endswith("_stream"))
    if rest not in ("/ml/v1/text/chat", "/ml/v1/text/chat_stream"):
        return fake._error("watsonx", 404, f"no route {rest}")
    refused = [k for k in ("model", "stream", "stream_options", "parallel_tool_calls") if k in data]
    if refused or data.get("model_id") != chat:
        return fake._error("watsonx", 400, f"Json document validation error: {refused or 'model_id'}")
    if isinstance(data.get("tool_choice"), str):
        return fake._error("watsonx", 400, "tool_choice must be an object; use tool_choice_option")
    extra = {"model_id": chat, "model_version": "1.1.0", "created_at": "2025-01-01T00:00:00Z"}
    if rest == "/ml/v1/text/chat":
        response = chat_response("watsonx", chat, **extra)
        del response["object"]
        return web.json_response(response)
    chunks = [{k: v for k, v in c.items() if k != "object"} | extra for c in chat_chunks("watsonx", chat)]
    return await _stream(request, sse(chunks, done=False, framing="id: {i}\nevent: message\n"))


async def _watsonx_generation(fake: FakeClouds, request: web.Request, data: dict[str, Any], model: str,
                              *, streamed: bool) -> web.StreamResponse:
    """``{"input", "model_id", "project_id", "parameters"}`` -> ``{"results": [{"generated_text", ...}]}``."""
    from .cloud_bodies import words

    if data.get("model_id") != model or not isinstance(data.get("input"), str) or "prompt" in data:
        return fake._error("watsonx", 400, "Json document validation error: input and model_id are required")
    parameters = data.get("parameters") or {}
    limit = parameters.get("max_new_tokens")
    text = words("watsonx")[: limit] if isinstance(limit, int) else words("watsonx")
    stop = "max_tokens" if isinstance(limit, int) and limit < len(words("watsonx")) else "eos_token"
    base = {"model_id": model, "created_at": "2025-01-01T00:00:00Z"}
    if not streamed:
        return web.json_response({**base, "results": [{"generated_text": "".join(text), "generated_token_count":
                                                       len(text), "input_token_count": 2, "stop_reason": stop}]})
    events = [{**base, "results": [{"generated_text": w, "generated_token_count": i + 1, "input_token_count": 2,
                                    "stop_reason": "not_finished"}]} for i, w in enumerate(text)]
    events[-1]["results"][0]["stop_reason"] = stop
    return await _stream(request, sse(events, done=False, framing="id: {i}\nevent: message\n"))
