"""Who is calling: the master key, a virtual key, or (local mode only) anyone.

Auth is off only when the gateway binds to loopback and no master key is set, or when the
operator said `--insecure-no-auth`; `auth_mode` decides that once, at start. With auth on,
every request needs `Authorization: Bearer <key>`. Fail closed: a key store that cannot answer
is a 500, never an anonymous request. The presented key never appears in a log line or an
error message; only a virtual key's id (not a secret) is logged.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from services.gateway import keys
from services.gateway.key_store import KeyStore, KeyStoreUnavailable
from shared import logs
from shared.errors import AiubError, Forbidden, Unauthorized

log = logs.get("gateway.auth")

MAX_KEY_CHARS = 256  # ours are 85; anything far longer is not a key


class StartupRefused(Exception):
    """The gateway must not start with this bind address and auth configuration."""


@dataclass(frozen=True)
class Principal:
    tenant: str  # scopes cache entries and rate limits
    key_id: str | None = None
    record: keys.KeyRecord | None = None

    def check_model(self, model: str) -> None:
        if self.record is not None and not self.record.allows(model):
            raise Forbidden(f"this API key may not use model {model!r}", param="model", code="model_not_allowed")

    @property
    def rpm(self) -> int | None:
        return self.record.rpm if self.record else None

    @property
    def tpm(self) -> int | None:
        return self.record.tpm if self.record else None


ANONYMOUS = Principal(tenant="anonymous")
MASTER = Principal(tenant="master")

AuthMode = Literal["required", "off", "off_insecure"]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def auth_mode(host: str, master_key: str | None, insecure_no_auth: bool, min_key_chars: int,
              master_key_env: str = "AIUB_MASTER_KEY") -> AuthMode:
    """Decided once at start; raises StartupRefused rather than serve a non-loopback bind unauthenticated."""
    if master_key is not None:
        if len(master_key) < min_key_chars or not master_key.isprintable() or master_key != master_key.strip():
            raise StartupRefused(f"the master key must be at least {min_key_chars} printable characters "
                                 "without surrounding whitespace")
        return "required"
    if is_loopback(host):
        return "off"
    if insecure_no_auth:
        return "off_insecure"
    raise StartupRefused(f"refusing to serve {host} without authentication: set a master key in "
                         f"${master_key_env} (auth.master_key_env), or pass --insecure-no-auth")


def bearer_token(header: str | None) -> str:
    """The token of an `Authorization: Bearer` header; every malformed shape is the same 401."""
    if not header:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    scheme, _, token = header.partition(" ")
    token = token.strip(" \t")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("malformed Authorization header: expected 'Bearer <key>'")
    if len(token) > MAX_KEY_CHARS or not token.isascii() or not token.isprintable() or " " in token:
        raise Unauthorized("invalid API key")
    return token


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("utf-8", "surrogateescape")).digest()


class Authenticator:
    def __init__(self, mode: AuthMode, master_key: str | None, store: KeyStore | None,
                 clock: Callable[[], float] = time.time) -> None:
        self.mode = mode
        self._master_digest = _digest(master_key) if master_key else None
        self._store = store
        self._clock = clock

    @property
    def store(self) -> KeyStore:
        """Where virtual keys live (the admin API writes there)."""
        if self._store is None:
            raise AiubError("this gateway has no key store", code="key_store_unavailable")
        return self._store

    @property
    def required(self) -> bool:
        return self.mode == "required"

    async def authenticate(self, header: str | None) -> Principal:
        if not self.required:
            return ANONYMOUS
        token = bearer_token(header)
        # Equal-length digests: the comparison time says nothing about the master key.
        if self._master_digest is not None and hmac.compare_digest(_digest(token), self._master_digest):
            return MASTER
        key_id = keys.key_id(token)
        if key_id is None or self._store is None:
            raise Unauthorized("invalid API key")
        try:
            record = await self._store.get(key_id)
        except KeyStoreUnavailable as e:
            log.error("key_store_unavailable", key_id=key_id, error=str(e))
            raise AiubError("the API key store is unavailable; try again shortly", code="auth_unavailable") from None
        verdict = keys.verify(record, token, self._clock())
        if verdict != "ok":
            log.info("auth_refused", key_id=key_id, reason=verdict)
            raise Unauthorized("invalid API key" if verdict == "invalid" else f"API key {verdict}")
        assert record is not None
        return Principal(tenant=f"key:{key_id}", key_id=key_id, record=record)
