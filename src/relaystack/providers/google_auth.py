"""Google OAuth access tokens for Gemini and Vertex AI, from Application Default Credentials.

google-auth (a well-kept library) finds the credentials (``GOOGLE_APPLICATION_CREDENTIALS``,
gcloud's ADC file, the metadata server) and exchanges them for an access token; a
``TokenCache`` keeps the token until a minute before it expires, so one exchange serves
every call for about an hour. google-auth's transport is synchronous: the exchange runs in
a worker thread, never on the event loop. The library is imported only when a provider
actually needs ADC (``pip install 'relaystack[cloud]'``).

``GoogleAuth`` picks, per call: the call's own key or access token (Bearer), else the
configured access token, else an ADC token.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from relaystack.errors import ConfigError, UpstreamError
from relaystack.providers.auth import TokenCache
from relaystack.upstream.base import UpstreamRequest

__all__ = ["CLOUD_PLATFORM_SCOPE", "AdcTokens", "GoogleAuth"]

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_ADC = "adc"  # the one credential ADC tokens are cached under


class AdcTokens:
    """Access tokens from Application Default Credentials, exchanged in a worker thread."""

    def __init__(self, label: str, scopes: tuple[str, ...] = (CLOUD_PLATFORM_SCOPE,)) -> None:
        self._label = label
        self._scopes = scopes
        self._credentials: Any = None
        self.cache = TokenCache(self._fetch)

    async def token(self) -> str:
        return await self.cache.get(_ADC)

    async def _fetch(self, _credential: str) -> tuple[str, float]:
        return await asyncio.to_thread(self._refresh)

    def _refresh(self) -> tuple[str, float]:
        try:
            import google.auth
            import google.auth.exceptions
            import google.auth.transport.requests
        except ImportError:
            raise ConfigError(
                f"{self._label} needs google-auth for Application Default Credentials: "
                "pip install 'relaystack[cloud]' (or set config.access_token)."
            ) from None
        try:
            if self._credentials is None:
                self._credentials, _ = google.auth.default(scopes=list(self._scopes))
            self._credentials.refresh(google.auth.transport.requests.Request())
        except google.auth.exceptions.GoogleAuthError as exc:
            raise UpstreamError(
                f"{self._label} could not get a Google access token ({type(exc).__name__}: {exc}). "
                "Check GOOGLE_APPLICATION_CREDENTIALS (or `gcloud auth application-default login`), "
                "or set config.access_token.",
                status=401, type="authentication_error", code="credentials_refused",
            ) from None
        token = str(self._credentials.token)
        expiry = self._credentials.expiry  # naive UTC, as google-auth keeps it
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
        lifetime = (expiry - now).total_seconds() if isinstance(expiry, dt.datetime) else 3600.0
        return token, lifetime


class GoogleAuth:
    """Bearer auth for Google's OpenAI-compatible endpoints: a key or token, else ADC."""

    def __init__(self, *, access_token: str | None, quota_project: str | None, adc: AdcTokens | None) -> None:
        self._access_token = access_token
        self._project_header = {"x-goog-user-project": quota_project} if quota_project else {}
        self.adc = adc

    async def apply(self, request: UpstreamRequest, key: str | None) -> None:
        if key:  # an API key (Gemini) or a caller's access token: used as it is
            request.headers["Authorization"] = f"Bearer {key}"
            return
        token = self._access_token or (await self.adc.token() if self.adc is not None else None)
        if token:
            request.headers["Authorization"] = f"Bearer {token}"
            request.headers.update(self._project_header)

    def secrets(self) -> tuple[str, ...]:
        tokens = self.adc.cache.tokens() if self.adc is not None else ()
        return (self._access_token, *tokens) if self._access_token else tokens

    def invalidate(self, key: str | None) -> None:
        if key is None and self.adc is not None:
            self.adc.cache.drop(_ADC)

    async def aclose(self) -> None:
        pass
