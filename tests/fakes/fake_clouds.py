"""One fake server on 127.0.0.1 that plays every remote provider relaystack knows.

Each provider's *personality* lives under its own path prefix and behaves as its public
documentation says: its URL layout, how it authenticates (Bearer key, Azure's ``api-key``,
Anthropic's ``x-api-key`` for its own listing, an IBM IAM token, a Google OAuth token, an
AWS SigV4 signature, an OCI signature, or no credentials at all for self-hosted servers),
its model listing shape, its error shape and its quirks (Gemini's usage on every chunk and
listed errors, Bedrock's ``reasoning``, watsonx's chat API and ``id:``/``event:`` framing,
NIM's ``input_type`` and ranking API, vLLM's Jina rerank). A request it would refuse gets
the refusal a real API gives (401, 400 naming the field), so a wrong header fails a test.

``FakeClouds(creds).start()``; ``base(name)`` is a personality's base URL; ``requests``
holds everything received; ``fail_next(name, status, message)`` plays an upstream error.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from aiohttp import web

from .cloud_bodies import chat_chunks, chat_response, completion_response, embedding_vector, sse
from .cloud_creds import CloudCreds, verify_google_jwt, verify_oci_signature, verify_sigv4

__all__ = ["BASES", "FakeClouds", "Seen"]

# personality -> path of its OpenAI-compatible base under the fake's root
BASES = {
    "openai": "/openai/v1", "azure": "/azure/openai/v1", "anthropic": "/anthropic/v1",
    "gemini": "/gemini/v1beta/openai", "vertexai": "/vertex/v1/projects/relaystack-test/locations/us-central1/"
    "endpoints/openapi", "bedrock": "/bedrock/v1", "cerebras": "/cerebras/v1",
    "databricks": "/databricks/serving-endpoints", "fireworks": "/fireworks/inference/v1", "groq": "/groq/openai/v1",
    "llama-openai-compat": "/llama/compat/v1", "llama-cpp-server": "/llamacpp/v1", "nvidia": "/nvidia/v1",
    "oci": "/oci/20231130/actions/v1", "runpod": "/runpod/v2/endpoint-1/openai/v1", "sambanova": "/sambanova/v1",
    "vllm": "/vllm/v1", "watsonx": "/watsonx", "openai-compat": "/compat/v1",
}
# models each personality lists (chat first, then embedding / rerank ones)
CHAT_MODELS = {
    "openai": "gpt-4o-mini", "azure": "gpt-4o-deployment", "anthropic": "claude-sonnet-4-5",
    "gemini": "models/gemini-2.0-flash", "vertexai": "google/gemini-2.0-flash", "bedrock": "openai.gpt-oss-20b-1:0",
    "cerebras": "llama3.1-8b", "databricks": "databricks-meta-llama-3-3-70b-instruct", "fireworks":
    "accounts/fireworks/models/llama-v3p1-8b-instruct", "groq": "llama-3.1-8b-instant", "llama-openai-compat":
    "Llama-4-Maverick-17B-128E-Instruct-FP8", "llama-cpp-server": "smollm2", "nvidia": "meta/llama-3.1-8b-instruct",
    "oci": "meta.llama-3.3-70b-instruct", "runpod": "my-vllm-model", "sambanova": "Meta-Llama-3.3-70B-Instruct",
    "vllm": "Qwen/Qwen3-0.6B", "watsonx": "ibm/granite-3-8b-instruct", "openai-compat": "local-model",
}
EMBEDDING_MODELS = {
    "openai": ("text-embedding-3-small", 1536), "azure": ("text-embedding-3-small", 1536),
    "gemini": ("models/text-embedding-004", 768), "databricks": ("databricks-gte-large-en", 1024),
    "fireworks": ("nomic-ai/nomic-embed-text-v1.5", 768), "nvidia": ("nvidia/nv-embedqa-e5-v5", 1024),
    "oci": ("cohere.embed-english-v3.0", 1024), "sambanova": ("E5-Mistral-7B-Instruct", 4096),
    "vllm": ("BAAI/bge-small-en-embed", 384), "watsonx": ("ibm/granite-embedding-278m-multilingual", 768),
    "llama-cpp-server": ("nomic-embed", 768), "runpod": ("my-embed-model", 256),
}
RERANK_MODELS = {"vllm": "BAAI/bge-reranker-v2-m3", "nvidia": "nvidia/llama-3.2-nv-rerankqa-1b-v2"}
# where each personality's routes start (its base, or above it when it has routes beside the API)
ROOTS = {**BASES, "databricks": "/databricks", "oci": "/oci/20231130", "vllm": "/vllm"}
KEYLESS = frozenset({"llama-cpp-server", "vllm", "nvidia", "openai-compat"})
NO_STREAM_OPTIONS = frozenset({"bedrock"})


@dataclass(frozen=True, slots=True)
class Seen:
    personality: str
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


Handler = Callable[[str, web.Request, bytes, str], Awaitable[web.StreamResponse]]


class FakeClouds:
    def __init__(self, creds: CloudCreds) -> None:
        self.creds = creds
        self.requests: list[Seen] = []
        self.iam_tokens: dict[str, str] = {}  # issued access token -> the API key it was exchanged for
        self.google_tokens: set[str] = set()
        self.token_exchanges = {"iam": 0, "google": 0}
        self._failures: dict[str, list[tuple[int, str]]] = {}
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def base(self, name: str) -> str:
        return self.root + BASES[name]

    def start(self) -> FakeClouds:
        self._loop = asyncio.new_event_loop()
        threading.Thread(target=self._loop.run_forever, name="fake-clouds", daemon=True).start()
        asyncio.run_coroutine_threadsafe(self._astart(), self._loop).result(timeout=10)
        return self

    async def _astart(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._loop = None

    def fail_next(self, name: str, status: int, message: str) -> None:
        with self._lock:
            self._failures.setdefault(name, []).append((status, message))

    def seen(self, name: str) -> list[Seen]:
        return [r for r in self.requests if r.personality == name]

    # -- dispatch --------------------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path
        if path == "/iam/identity/token":
            return self._iam(body)
        if path == "/google/token":
            return self._google_token(body)
        for name, root in sorted(ROOTS.items(), key=lambda kv: -len(kv[1])):
            if not path.startswith(root + "/"):
                continue
            self._record(name, request, body)
            refusal = self._authenticate(name, request, body)
            if refusal is not None:
                return self._error(name, 401, f"unauthenticated: {refusal}")
            with self._lock:
                queued = self._failures.get(name)
                failure = queued.pop(0) if queued else None
            if failure is not None:
                return self._error(name, *failure)
            return await self._serve(name, request, body, path[len(root):])
        return web.json_response({"error": {"message": f"no route {path}"}}, status=404)

    def _record(self, name: str, request: web.Request, body: bytes) -> None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        with self._lock:
            self.requests.append(Seen(name, request.method, request.path, dict(request.query), headers, body))

    # -- auth, as each API checks it -------------------------------------------------------
    def _authenticate(self, name: str, request: web.Request, body: bytes) -> str | None:
        headers = {k.lower(): v for k, v in request.headers.items()}
        auth = headers.get("authorization")
        bearer = auth[len("Bearer "):] if auth and auth.startswith("Bearer ") else None
        if name in KEYLESS:
            return "a keyless server got an Authorization header" if auth else None
        if name == "azure":
            return None if headers.get("api-key") == self.creds.key("azure") and not auth else "api-key header"
        if name == "anthropic" and request.path.endswith("/models"):
            ok = headers.get("x-api-key") == self.creds.key("anthropic") and headers.get("anthropic-version")
            return None if ok else "x-api-key and anthropic-version headers"
        if name == "gemini":
            if bearer == self.creds.key("gemini"):
                return None
            if bearer in self.google_tokens and headers.get("x-goog-user-project") == self.creds.google_project:
                return None
            return "API key or OAuth token with x-goog-user-project"
        if name == "vertexai":
            return None if bearer in self.google_tokens else "Google OAuth token"
        if name == "bedrock":
            if bearer is not None:
                return None if bearer == self.creds.key("bedrock") else "Bedrock API key"
            return verify_sigv4(request.method, str(request.url), headers, body, self.creds,
                                service="bedrock-mantle", region="us-east-2")
        if name == "watsonx":
            if request.path.endswith("/foundation_model_specs"):
                return None  # public
            return None if bearer in self.iam_tokens else "IAM access token"
        if name == "oci":
            if headers.get("compartmentid") != self.creds.oci_compartment and "/actions/" in request.path:
                return "CompartmentId header"
            return verify_oci_signature(request.method, request.path_qs, headers, body, self.creds)
        return None if bearer == self.creds.key(name) else f"Bearer {name} key"

    def _iam(self, body: bytes) -> web.Response:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        self.token_exchanges["iam"] += 1
        if form.get("grant_type") != "urn:ibm:params:oauth:grant-type:apikey" or form.get("apikey") != self.creds.key(
                "watsonx"):
            return web.json_response({"errorCode": "BXNIM0415E", "errorMessage": "Provided API key could not be found.",
                                      "context": {"requestId": "1"}}, status=400)
        token = "iam-" + secrets.token_hex(16)
        self.iam_tokens[token] = form["apikey"]
        return web.json_response({"access_token": token, "refresh_token": "not_supported", "token_type": "Bearer",
                                  "expires_in": 3600, "expiration": 1900000000, "scope": "ibm openid"})

    def _google_token(self, body: bytes) -> web.Response:
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        self.token_exchanges["google"] += 1
        problem = verify_google_jwt(form.get("assertion", ""), self.creds)
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or problem:
            return web.json_response({"error": "invalid_grant", "error_description": problem}, status=400)
        token = "ya29." + secrets.token_hex(16)
        self.google_tokens.add(token)
        return web.json_response({"access_token": token, "expires_in": 3599, "token_type": "Bearer"})

    # -- errors in each API's shape ----------------------------------------------------------
    def _error(self, name: str, status: int, message: str) -> web.Response:
        if name == "gemini":
            body: Any = [{"error": {"code": status, "message": message, "status": "INVALID_ARGUMENT"}}]
        elif name == "anthropic":
            body = {"type": "error", "error": {"type": "invalid_request_error", "message": message}}
        elif name == "watsonx":
            body = {"errors": [{"code": "invalid_request", "message": message}], "trace": "t", "status_code": status}
        elif name == "oci":
            body = {"code": "NotAuthenticated", "message": message}
        else:
            body = {"error": {"message": message, "type": "invalid_request_error", "param": None, "code": None}}
        return web.json_response(body, status=status)

    # -- the APIs --------------------------------------------------------------------------
    async def _serve(self, name: str, request: web.Request, body: bytes, rest: str) -> web.StreamResponse:
        from .fake_clouds_routes import serve

        return await serve(self, name, request, body, rest)


__all__ += ["CHAT_MODELS", "EMBEDDING_MODELS", "RERANK_MODELS", "chat_chunks", "chat_response",
            "completion_response", "embedding_vector", "sse"]
