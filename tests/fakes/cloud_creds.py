"""Credentials of the fake clouds, and the checks a real cloud makes of them.

Every credential is a canary (a value that must never reach a response, log, store or
recording). The checks are independent of the code under test where it matters: the OCI
signature and the Google JWT are verified with the public key (cryptography), SigV4 is
recomputed from the request exactly as received on the wire.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

__all__ = ["CloudCreds", "verify_google_jwt", "verify_oci_signature", "verify_sigv4"]


def _canary(name: str) -> str:
    return f"canary-{name}-{secrets.token_hex(12)}"


@dataclass
class CloudCreds:
    """One set of test credentials per provider type (fresh canaries per test session)."""

    keys: dict[str, str] = field(default_factory=dict)
    aws_access_key: str = field(default_factory=lambda: "AKIA" + secrets.token_hex(8).upper())
    aws_secret_key: str = field(default_factory=lambda: _canary("aws-secret"))
    oci_key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    google_key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    oci_tenancy: str = "ocid1.tenancy.oc1..aaaatest"
    oci_user: str = "ocid1.user.oc1..aaaatest"
    oci_fingerprint: str = "12:34:56:78:90:ab:cd:ef:12:34:56:78:90:ab:cd:ef"
    oci_compartment: str = "ocid1.compartment.oc1..aaaatest"
    google_project: str = "relaystack-test"
    google_client_email: str = "relaystack@relaystack-test.iam.gserviceaccount.com"

    def key(self, name: str) -> str:
        if name not in self.keys:
            self.keys[name] = _canary(name)
        return self.keys[name]

    def canaries(self) -> list[str]:
        """Every secret value: keys, the AWS secret, private key material."""
        return [*self.keys.values(), self.aws_secret_key, _pem_body(self.oci_key), _pem_body(self.google_key)]

    def write_oci_config(self, directory: Path) -> Path:
        key_file = directory / "oci_api_key.pem"
        key_file.write_bytes(_pem(self.oci_key))
        config = directory / "oci_config"
        config.write_text(
            "[DEFAULT]\n"
            f"user={self.oci_user}\nfingerprint={self.oci_fingerprint}\ntenancy={self.oci_tenancy}\n"
            f"region=us-chicago-1\nkey_file={key_file}\n"
        )
        return config

    def write_google_service_account(self, directory: Path, token_uri: str) -> Path:
        path = directory / "service_account.json"
        path.write_text(json.dumps({
            "type": "service_account",
            "project_id": self.google_project,
            "private_key_id": "0123456789abcdef",
            "private_key": _pem(self.google_key).decode(),
            "client_email": self.google_client_email,
            "client_id": "1234567890",
            "token_uri": token_uri,
        }))
        return path


def _pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_body(key: rsa.RSAPrivateKey) -> str:
    """A line from the middle of the PEM: enough to spot a leaked private key."""
    return _pem(key).decode().splitlines()[5]


def verify_oci_signature(method: str, path_qs: str, headers: dict[str, str], body: bytes,
                         creds: CloudCreds) -> str | None:
    """None if the request carries a valid OCI signature by the test key, else the reason."""
    auth = headers.get("authorization", "")
    if not auth.startswith("Signature "):
        return "no OCI signature"
    params = dict(part.split("=", 1) for part in auth[len("Signature "):].split(","))
    params = {k.strip(): v.strip().strip('"') for k, v in params.items()}
    if params.get("keyId") != f"{creds.oci_tenancy}/{creds.oci_user}/{creds.oci_fingerprint}":
        return "wrong keyId"
    signed = params.get("headers", "").split()
    required = {"date", "(request-target)", "host"}
    if method in ("POST", "PUT", "PATCH"):
        required |= {"content-length", "content-type", "x-content-sha256"}
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        if headers.get("x-content-sha256") != digest:
            return "x-content-sha256 does not match the body"
        if headers.get("content-length") != str(len(body)):
            return "content-length does not match the body"
    if not required <= set(signed):
        return f"headers signed: {signed}"
    lines = []
    for name in signed:
        value = f"{method.lower()} {path_qs}" if name == "(request-target)" else headers.get(name)
        if value is None:
            return f"signed header {name} not sent"
        lines.append(f"{name}: {value}")
    try:
        creds.oci_key.public_key().verify(base64.b64decode(params["signature"]), "\n".join(lines).encode(),
                                          padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return "bad signature"
    return None


def verify_sigv4(method: str, url: str, headers: dict[str, str], body: bytes, creds: CloudCreds,
                 *, service: str, region: str) -> str | None:
    """Recompute the SigV4 signature of the request as received (botocore's canonical form)."""
    import botocore.auth
    import botocore.awsrequest
    import botocore.credentials

    auth = headers.get("authorization", "")
    if not auth.startswith("AWS4-HMAC-SHA256 "):
        return "no SigV4 signature"
    fields = dict(part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(","))
    scope = fields["Credential"].split("/")
    if scope[0] != creds.aws_access_key or scope[2] != region or scope[3] != service:
        return f"wrong credential scope {fields['Credential']}"
    signed = fields["SignedHeaders"].split(";")
    aws = botocore.awsrequest.AWSRequest(method=method, url=url, data=body,
                                         headers={name: headers[name] for name in signed if name in headers})
    aws.context["timestamp"] = headers.get("x-amz-date", "")
    signer = botocore.auth.SigV4Auth(
        botocore.credentials.Credentials(creds.aws_access_key, creds.aws_secret_key), service, region
    )
    canonical = signer.canonical_request(aws)
    expected = signer.signature(signer.string_to_sign(aws, canonical), aws)
    return None if expected == fields["Signature"] else "signature mismatch"


GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"  # what Google's token endpoint expects as aud


def verify_google_jwt(assertion: str, creds: CloudCreds) -> str | None:
    try:
        head, payload, signature = assertion.split(".")
        claims: dict[str, Any] = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        creds.google_key.public_key().verify(
            base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)), f"{head}.{payload}".encode(),
            padding.PKCS1v15(), hashes.SHA256(),
        )
    except Exception as exc:
        return f"bad JWT ({type(exc).__name__})"
    if claims.get("iss") != creds.google_client_email or claims.get("aud") != GOOGLE_TOKEN_AUDIENCE:
        return "wrong iss/aud"
    if "cloud-platform" not in str(claims.get("scope")):
        return "no cloud-platform scope"
    return None
