"""What a provider type is, as data: one ``ProviderSpec`` per catalog row.

A spec says where the provider lives, how a call authenticates, what it can do and which
models it knows, so a plain OpenAI-compatible provider needs no code and a quirky one's
module holds only its quirks. ``Capabilities`` are checked before any upstream call: a
request a provider cannot serve gets a clear 400 naming what to change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from relaystack.errors import InvalidRequestError, UnsupportedParameterError

__all__ = ["Capabilities", "ImageInput", "Operation", "ProviderSpec"]

# how a provider takes images in chat messages: any (URL or base64 data URL), base64 only, none
ImageInput = Literal["any", "base64", "none"]
Operation = Literal["chat", "completion", "embeddings", "rerank"]

_FLAGS = {"chat": "chat", "completion": "completions", "embeddings": "embeddings", "rerank": "rerank"}
_OPERATION_NAMES = {
    "chat": "chat completions (POST /v1/chat/completions)",
    "completion": "text completions (POST /v1/completions)",
    "embeddings": "embeddings (POST /v1/embeddings)",
    "rerank": "rerank (POST /v1alpha/inference/rerank)",
}


@dataclass(frozen=True, slots=True)
class Capabilities:
    chat: bool = True
    completions: bool = True
    embeddings: bool = True
    rerank: bool = False
    tools: bool = True
    # False: the upstream rejects `stream_options`; relaystack drops it from the upstream body
    stream_options: bool = True
    images: ImageInput = "any"

    def supports(self, operation: Operation) -> bool:
        return bool(getattr(self, _FLAGS[operation]))

    def check(self, operation: Operation, body: dict[str, Any], who: str) -> None:
        """Raise a 400 for what this provider cannot do (before any upstream call)."""
        if not getattr(self, _FLAGS[operation]):
            raise InvalidRequestError(
                f"{who} does not serve {_OPERATION_NAMES[operation]}; use a model of another provider.",
                param="model", code="unsupported_operation",
            )
        if operation != "chat":
            return
        if not self.tools and body.get("tools"):
            raise UnsupportedParameterError(f"{who} does not support tool calling; remove 'tools'.", param="tools")
        if self.images != "any" and (kind := _image_kind(body.get("messages"))) is not None:
            if self.images == "none":
                raise UnsupportedParameterError(
                    f"{who} does not take images; remove the image_url content parts.", param="messages",
                )
            if kind == "url":
                raise UnsupportedParameterError(
                    f"{who} takes images as base64 data URLs only (data:image/png;base64,...), not as links; "
                    "download the image and send it inline.",
                    param="messages",
                )


def _image_kind(messages: Any) -> Literal["url", "base64"] | None:
    """"url" if any image part is a link, "base64" if all are data URLs, None without images."""
    found: Literal["url", "base64"] | None = None
    if not isinstance(messages, list):
        return None
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "image_url":
                continue
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if isinstance(url, str) and not url.startswith("data:"):
                return "url"
            found = "base64"
    return found


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    """One provider type: everything relaystack knows about it that is not code."""

    provider_type: str
    # the name of the class that serves it (generated for plain rows: named, not anonymous)
    class_name: str
    base_url: str | None = None
    # the X-LlamaStack-Provider-Data field carrying a per-request key
    key_field: str | None = None
    # the environment variable named in "missing key" messages (and the sample config)
    key_env: str | None = None
    # False: a call without any key is sent without an Authorization header (self-hosted servers)
    key_required: bool = True
    capabilities: Capabilities = field(default_factory=Capabilities)
    # upstream id -> {"embedding_dimension", "context_length"}: listed ids found here are embedding models
    embedding_models: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    # headers every call carries (on top of auth and the config's extra_headers)
    default_headers: Mapping[str, str] = field(default_factory=dict)
    # "module:Class" for a provider with quirks; None: the shared base serves it as it is
    implementation: str | None = None
    remote: bool = True
    # one line for `relaystack providers` and the README table
    summary: str = ""
    # config keys of providers that do not use the shared settings model (local engines)
    config_keys: tuple[str, ...] = ()
    # the sample config `relaystack providers TYPE` prints, when llama-stack's differs from the generic one
    sample: Mapping[str, str] | None = None

    def label(self, provider_id: str) -> str:
        return f"Provider '{provider_id}' ({self.provider_type})"
