"""The one error tree of relaystack.

Every error a client can see is a subclass of ``RelaystackError`` and carries what
OpenAI's error envelope needs: an HTTP ``status``, an OpenAI ``type``, an optional
``code`` and ``param``. The API layer renders them; nothing else decides a status.

    RelaystackError (500, api_error)
    ├── InvalidRequestError (400, invalid_request_error)
    │   ├── UnsupportedParameterError   a provider cannot take this field
    │   ├── ModelTypeError              an embedding model used for chat, or the reverse
    │   └── MissingApiKeyError          no key in config nor in X-LlamaStack-Provider-Data
    ├── AuthenticationError (401)
    ├── PermissionDeniedError (403)
    ├── NotFoundError (404)
    │   ├── ModelNotFoundError          names close matches
    │   └── CompletionNotFoundError
    ├── ConflictError (409)             e.g. cancelling a response that already finished
    ├── RequestTooLargeError (413)
    ├── RateLimitError (429)            keeps the upstream's Retry-After
    ├── UpstreamError (upstream status) an upstream 4xx/5xx passed through
    ├── UpstreamConnectionError (502)   could not reach the upstream
    ├── UpstreamProtocolError (502)     the upstream answered something that is not its API
    ├── UpstreamTimeoutError (504)
    ├── ReplayMissError (404)           replay mode and no recording matches (a status SDKs do not retry)
    ├── NotImplementedYetError (501)
    └── ServiceUnavailableError (503)   e.g. a local model still loading
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any, ClassVar

__all__ = [
    "AuthenticationError",
    "CompletionNotFoundError",
    "ConfigError",
    "ConflictError",
    "InvalidRequestError",
    "MissingApiKeyError",
    "ModelNotFoundError",
    "ModelTypeError",
    "NotFoundError",
    "NotImplementedYetError",
    "PermissionDeniedError",
    "RateLimitError",
    "RelaystackError",
    "ReplayMissError",
    "RequestTooLargeError",
    "ServiceUnavailableError",
    "UnsupportedParameterError",
    "UpstreamConnectionError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamTimeoutError",
    "error_body",
    "error_code_for_status",
    "error_type_for_status",
]


class ConfigError(Exception):
    """A run.yaml (or CLI option) that cannot be used. Raised at start-up, never at request time."""


class RelaystackError(Exception):
    status: ClassVar[int] = 500
    type: ClassVar[str] = "api_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code if code is not None else self.default_code
        self.headers: dict[str, str] = headers or {}

    @property
    def status_code(self) -> int:
        return self.status

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class InvalidRequestError(RelaystackError):
    status = 400
    type = "invalid_request_error"


class UnsupportedParameterError(InvalidRequestError):
    default_code = "unsupported_parameter"


class ModelTypeError(InvalidRequestError):
    default_code = "model_type_mismatch"


class MissingApiKeyError(InvalidRequestError):
    default_code = "missing_api_key"


class AuthenticationError(RelaystackError):
    status = 401
    type = "authentication_error"
    default_code = "invalid_api_key"


class PermissionDeniedError(RelaystackError):
    status = 403
    type = "permission_error"


class NotFoundError(RelaystackError):
    status = 404
    type = "not_found_error"


class ModelNotFoundError(NotFoundError):
    default_code = "model_not_found"

    @classmethod
    def for_model(cls, model: str, known: Iterable[str]) -> ModelNotFoundError:
        known_list = list(known)
        close = difflib.get_close_matches(model, known_list, n=3, cutoff=0.5)
        if not close:
            # ids are often `provider/vendor/name`: also try matching the tail.
            tails = {k.rsplit("/", 1)[-1]: k for k in known_list}
            close = [tails[t] for t in difflib.get_close_matches(model.rsplit("/", 1)[-1], tails, n=3)]
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        return cls(
            f"Model '{model}' not found.{hint} GET /v1/models lists the models this server serves.",
            param="model",
        )


class CompletionNotFoundError(NotFoundError):
    default_code = "completion_not_found"


class ConflictError(RelaystackError):
    status = 409
    type = "invalid_request_error"
    default_code = "conflict"


class RequestTooLargeError(RelaystackError):
    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RateLimitError(RelaystackError):
    status = 429
    type = "rate_limit_error"
    default_code = "rate_limit_exceeded"


class UpstreamError(RelaystackError):
    """An upstream answered with an error status; relaystack passes the status through."""

    def __init__(
        self,
        message: str,
        *,
        status: int,
        type: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message, param=param, code=code, headers=headers)
        self._status = status
        self._type = type or error_type_for_status(status)

    @property
    def status_code(self) -> int:
        return self._status

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self._type, "param": self.param, "code": self.code}}


class UpstreamConnectionError(RelaystackError):
    status = 502
    type = "upstream_error"
    default_code = "upstream_unreachable"


class UpstreamProtocolError(RelaystackError):
    status = 502
    type = "upstream_error"
    default_code = "upstream_bad_response"


class UpstreamTimeoutError(RelaystackError):
    status = 504
    type = "upstream_error"
    default_code = "upstream_timeout"


class ReplayMissError(RelaystackError):
    """404, not 500: the OpenAI SDK retries 408, 409, 429 and every 5xx, which would only triple the
    time to the same clear message."""

    status = 404
    type = "not_found_error"
    default_code = "recording_not_found"


class NotImplementedYetError(RelaystackError):
    status = 501
    type = "api_error"
    default_code = "not_implemented"


class ServiceUnavailableError(RelaystackError):
    status = 503
    type = "api_error"
    default_code = "service_unavailable"


# The one map from an HTTP status to OpenAI's error ``type`` (and, below, a default ``code``),
# for errors relaystack synthesises or passes through without a type of their own.
_STATUS_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}
_STATUS_CODES = {
    408: "request_timeout",
    413: "request_too_large",
    429: "rate_limit_exceeded",
    431: "request_header_fields_too_large",
    503: "service_unavailable",
}


def error_type_for_status(status: int) -> str:
    return _STATUS_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def error_code_for_status(status: int) -> str | None:
    return _STATUS_CODES.get(status, "internal_error" if status >= 500 else None)


def error_body(status: int, message: str, *, code: str | None = None) -> dict[str, Any]:
    """OpenAI's error envelope for ``status``, for errors made outside the ``RelaystackError`` tree
    (the connection guard, injected faults)."""
    return {"error": {"message": message, "type": error_type_for_status(status), "param": None,
                      "code": code if code is not None else error_code_for_status(status)}}
