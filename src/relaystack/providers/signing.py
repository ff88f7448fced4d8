"""Request signing: AWS SigV4 (botocore's signer) and OCI's signature (the oci SDK's signer).

No cryptography is written here: each scheme hands the exact request (method, URL, the
headers it will send, the body bytes) to the vendor's own, well-kept signer and copies the
headers it adds onto the request, after the body is final and just before it is sent.
Both SDKs are imported only when a provider that signs is configured
(``pip install 'relaystack[cloud]'``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from relaystack.errors import ConfigError, MissingApiKeyError
from relaystack.upstream.base import UpstreamRequest

__all__ = ["OCISignerAuth", "SigV4Auth"]


def _need(module: str, label: str) -> None:
    raise ConfigError(f"{label} needs the '{module}' package for request signing: pip install 'relaystack[cloud]'.")


class SigV4Auth:
    """AWS Signature Version 4, by ``botocore.auth.SigV4Auth``.

    Credentials: the configured access key (and session token), else botocore's default chain
    (environment, shared files and ``profile_name``, container and instance roles), resolved
    once in a worker thread; refreshable credentials refresh themselves."""

    def __init__(self, label: str, *, service: str, region: str, access_key: str | None, secret_key: str | None,
                 session_token: str | None, profile: str | None) -> None:
        self.label = label
        self.service = service
        self.region = region
        self._static = (access_key, secret_key, session_token) if access_key and secret_key else None
        self._profile = profile
        self._credentials: Any = None
        try:
            import botocore.auth  # noqa: F401
        except ImportError:
            _need("botocore", label)

    async def _frozen(self) -> Any:
        if self._credentials is None:
            self._credentials = await asyncio.to_thread(self._resolve)
        credentials = self._credentials
        if getattr(credentials, "refresh_needed", lambda: False)():
            return await asyncio.to_thread(credentials.get_frozen_credentials)
        return credentials.get_frozen_credentials()

    def _resolve(self) -> Any:
        import botocore.credentials
        import botocore.session

        if self._static is not None:
            return botocore.credentials.Credentials(*self._static)
        found = botocore.session.Session(profile=self._profile).get_credentials()
        if found is None:
            raise MissingApiKeyError(
                f"No AWS credentials for {self.label}: set config.aws_access_key_id and aws_secret_access_key, "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or a profile, or use a Bedrock API key "
                "(config.api_key, AWS_BEARER_TOKEN_BEDROCK)."
            )
        return found

    async def apply(self, request: UpstreamRequest, key: str | None) -> None:
        import botocore.auth
        import botocore.awsrequest

        credentials = await self._frozen()
        aws = botocore.awsrequest.AWSRequest(
            method=request.method, url=request.url, data=request.body or b"", headers=dict(request.headers)
        )
        botocore.auth.SigV4Auth(credentials, self.service, self.region).add_auth(aws)
        for name, value in aws.headers.items():
            request.headers[name] = value

    def secrets(self) -> tuple[str, ...]:
        credentials = self._credentials
        if credentials is None:
            return ()
        found = (getattr(credentials, "secret_key", None), getattr(credentials, "token", None))
        return tuple(s for s in found if isinstance(s, str) and s)

    def invalidate(self, key: str | None) -> None:
        pass

    async def aclose(self) -> None:
        pass


class OCISignerAuth:
    """OCI's request signature (draft-cavage HTTP signatures), by the oci SDK's signers.

    ``config_file``: a user principal from an OCI config file and profile (the key file it
    names); ``instance_principal``: the instance's own identity, from the metadata service."""

    def __init__(self, label: str, *, auth_type: str, config_file: str, profile: str) -> None:
        self.label = label
        self.auth_type = auth_type
        self._config_file = config_file
        self._profile = profile
        self._signer: Any = None
        try:
            import oci  # noqa: F401
        except ImportError:
            _need("oci", label)
        if auth_type == "config_file":
            self._signer = self._user_signer()  # a bad file or profile fails start-up, not the first call

    def _user_signer(self) -> Any:
        import oci

        try:
            config = oci.config.from_file(self._config_file, self._profile)
            oci.config.validate_config(config)
        except (oci.exceptions.ConfigFileNotFound, oci.exceptions.ProfileNotFound,
                oci.exceptions.InvalidConfig, oci.exceptions.InvalidKeyFilePath) as exc:
            raise ConfigError(f"{self.label}: oci_config_file_path / oci_config_profile: {exc}") from None
        return oci.signer.Signer(
            tenancy=config["tenancy"], user=config["user"], fingerprint=config["fingerprint"],
            private_key_file_location=config.get("key_file"), pass_phrase=config.get("pass_phrase"),
            private_key_content=config.get("key_content"),
        )

    async def apply(self, request: UpstreamRequest, key: str | None) -> None:
        import requests

        if self._signer is None:  # instance principal: fetched from the metadata service, once
            import oci

            self._signer = await asyncio.to_thread(oci.auth.signers.InstancePrincipalsSecurityTokenSigner)
        prepared = requests.Request(request.method, request.url, headers=request.headers,
                                    data=request.body).prepare()
        if self.auth_type == "instance_principal":
            await asyncio.to_thread(self._signer, prepared)  # may refresh its security token over the network
        else:
            self._signer(prepared)
        for name, value in prepared.headers.items():
            request.headers[name] = value if isinstance(value, str) else value.decode("latin-1")

    def secrets(self) -> tuple[str, ...]:
        token = getattr(getattr(self._signer, "security_token", None), "security_token", None)
        return (token,) if isinstance(token, str) and token else ()

    def invalidate(self, key: str | None) -> None:
        pass

    async def aclose(self) -> None:
        pass
