"""Virtual keys: their format, how they are hashed and checked, and what a key may do.

A key is ``rsk-<12 hex>-<43 url-safe chars>``: the hex part is the key's public id (its record
is ``key-<12 hex>``, safe to log and show), the rest 256 random bits. The store keeps only
``HMAC-SHA256(server secret, key)``: a copy of the database alone cannot confirm a guessed key.
A presented key is found by its id and its HMAC compared in constant time.
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from relaystack.errors import ConfigError, InvalidRequestError
from relaystack.gateway.settings import Limits

__all__ = [
    "ADMIN",
    "Budget",
    "KeyFields",
    "KeyInfo",
    "hash_key",
    "key_id_of",
    "load_server_secret",
    "new_key",
    "public_record",
]

TOKEN_PREFIX = "rsk-"
ID_PREFIX = "key-"
_ID_HEX = 12
_TOKEN_LENGTH = len(TOKEN_PREFIX) + _ID_HEX + 1 + 43
_HEX = frozenset("0123456789abcdef")
SECRET_FILE = "key-secret"
ADMIN_KEY_MIN_LENGTH = 16


def new_key() -> tuple[str, str]:
    """A fresh (key id, key). The key is shown once, to whoever created it."""
    hex_id = secrets.token_hex(_ID_HEX // 2)
    return ID_PREFIX + hex_id, f"{TOKEN_PREFIX}{hex_id}-{secrets.token_urlsafe(32)}"


def key_id_of(token: str) -> str | None:
    """The public id inside a presented key, or None when it is not shaped like one of ours."""
    if len(token) != _TOKEN_LENGTH or not token.startswith(TOKEN_PREFIX) or token[4 + _ID_HEX] != "-":
        return None
    hex_id = token[4 : 4 + _ID_HEX]
    return ID_PREFIX + hex_id if _HEX.issuperset(hex_id) else None


def hash_key(secret: bytes, token: str) -> str:
    return hmac.digest(secret, token.encode(), "sha256").hex()  # the one-shot C path


def load_server_secret(given: str | None, storage_dir: Path) -> bytes:
    """The HMAC secret: ``key_secret``/``$RELAYSTACK_KEY_SECRET`` if given, else a random one
    made once in ``<storage dir>/key-secret`` (0600). Workers starting together agree on it:
    the file appears atomically (written aside, then hard-linked into place)."""
    if given:
        if len(given) < ADMIN_KEY_MIN_LENGTH:
            raise ConfigError(f"server.auth.key_secret must be at least {ADMIN_KEY_MIN_LENGTH} characters.")
        return given.encode()
    path = storage_dir / SECRET_FILE
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    try:
        storage_dir.mkdir(parents=True, exist_ok=True)
        aside = storage_dir / f".{SECRET_FILE}.{os.getpid()}"
        fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(48) + "\n")
        try:
            os.link(aside, path)
        except FileExistsError:
            pass  # another worker won the race: use its secret
        finally:
            aside.unlink(missing_ok=True)
        return _read_secret(path)
    except OSError as exc:
        raise ConfigError(
            f"cannot create the key secret {path} ({exc.strerror}); set RELAYSTACK_KEY_SECRET or make "
            "storage.dir writable."
        ) from exc


def _read_secret(path: Path) -> bytes:
    value = path.read_text().strip()
    if len(value) < ADMIN_KEY_MIN_LENGTH:
        raise ConfigError(f"{path} holds no usable key secret; delete it (every key would then need re-issuing).")
    return value.encode()


# -- what a key may do -------------------------------------------------------------------------
Period = Literal["day", "week", "month", "total"]


class Budget(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    max_usd: float = Field(gt=0, description="spend allowed per period, in US dollars (requests in flight hold "
                                              "their estimated cost against it)")
    period: Period = "month"  # calendar periods, UTC; "total" never resets


class KeyFields(BaseModel):
    """What an admin sets on a key (POST creates with these, PATCH changes the ones given)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    owner: str | None = Field(None, max_length=200)
    team: str | None = Field(None, max_length=200)
    metadata: dict[str, Any] = Field(default_factory=dict)
    models: list[str] | None = None  # None: every model
    providers: list[str] | None = None  # None: every provider
    limits: Limits | None = None  # None: server.auth.default_limits
    model_limits: dict[str, Limits] = Field(default_factory=dict)
    budget: Budget | None = None
    expires_at: int | None = Field(None, ge=0, description="unix seconds")

    @field_validator("models", "providers")
    @classmethod
    def _non_empty_names(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and any(not isinstance(v, str) or not v for v in value):
            raise ValueError("must be a list of non-empty strings")
        return value

    @classmethod
    def parse(cls, body: dict[str, Any], *, partial: bool) -> tuple[KeyFields, set[str]]:
        """Validated fields and which of them the body set; errors are 400s naming the field."""
        try:
            fields = cls.model_validate(body)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "body"
            raise InvalidRequestError(f"Invalid '{where}': {first['msg']}.", param=where) from None
        given = set(fields.model_fields_set)
        if not partial:
            given = set(cls.model_fields)
        return fields, given


def public_record(record: dict[str, Any]) -> dict[str, Any]:
    """A key record as the admin API shows it: never the hash (nor, ever, the key)."""
    shown = {k: v for k, v in record.items() if k != "secret_hash"}
    shown["object"] = "api_key"
    now = time.time()
    expires_at = record.get("expires_at")
    shown["status"] = (
        "revoked" if record.get("revoked_at")
        else "expired" if expires_at is not None and expires_at <= now
        else "active"
    )
    return shown


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """A key as the gate uses it: parsed once per process (and again after any key changed)."""

    id: str
    secret_hash: bytes = b""
    is_admin: bool = False
    models: frozenset[str] | None = None
    providers: frozenset[str] | None = None
    limits: Limits = field(default_factory=Limits)
    model_limits: dict[str, Limits] = field(default_factory=dict)
    budget: Budget | None = None
    expires_at: float | None = None
    revoked: bool = False
    # model -> the gate's admission plan for this key and model (keygate.py): made on the key's
    # first request for the model, gone with this object when the key is reloaded (any change)
    plans: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_record(cls, record: dict[str, Any], default_limits: Limits) -> KeyInfo:
        limits = record.get("limits")
        budget = record.get("budget")
        models, providers = record.get("models"), record.get("providers")
        return cls(
            id=str(record["id"]),
            secret_hash=str(record.get("secret_hash", "")).encode(),
            models=frozenset(models) if models is not None else None,
            providers=frozenset(providers) if providers is not None else None,
            limits=Limits.model_validate(limits) if limits is not None else default_limits,
            model_limits={m: Limits.model_validate(v) for m, v in (record.get("model_limits") or {}).items()},
            budget=Budget.model_validate(budget) if budget else None,
            expires_at=record.get("expires_at"),
            revoked=bool(record.get("revoked_at")),
        )

    def allows_model(self, model: str) -> bool:
        return self.models is None or model in self.models

    def allows_provider(self, provider_id: str) -> bool:
        return self.providers is None or provider_id in self.providers


ADMIN = KeyInfo(id="admin", is_admin=True)
