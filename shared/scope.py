"""A caller's key scope as a signed token, so the bus is no back door around the gateway.

Anyone allowed to publish on `aiub.requests` could otherwise skip the gateway's keys. With a
bus secret configured, the gateway signs each request's scope (tenant, allowed models, expiry)
and workers serve only requests whose token verifies and allows the requested model. A
program streaming over NATS with the client library gets a token from `aiub keys bus-token`.

Token: `<base64url(JSON scope)>.<base64url(HMAC-SHA256(secret, JSON scope))>`. Pure: no I/O.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import hmac

import msgspec


class Scope(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    models: tuple[str, ...] = ()  # public model names or globs; empty: every model
    expires_at: float | None = None  # epoch seconds

    def allows(self, model: str) -> bool:
        return not self.models or any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)


class ScopeRejected(Exception):
    """Why a request's scope does not let it be served; `status` is 401 (no valid token) or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


_decode_scope = msgspec.json.Decoder(Scope).decode


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(scope: Scope, secret: bytes) -> str:
    payload = msgspec.json.encode(scope)
    return f"{_b64(payload)}.{_b64(hmac.new(secret, payload, hashlib.sha256).digest())}"


def verify(token: str | None, secret: bytes, model: str, now: float) -> Scope:
    """The scope, if `token` is genuine, unexpired and allows `model`; else ScopeRejected."""
    if not token:
        raise ScopeRejected(401, "this request carries no key scope; the bus requires one")
    try:
        payload_text, signature_text = token.split(".", 1)
        payload, signature = _unb64(payload_text), _unb64(signature_text)
    except (ValueError, UnicodeEncodeError):
        raise ScopeRejected(401, "the request's key scope is malformed") from None
    if not hmac.compare_digest(hmac.new(secret, payload, hashlib.sha256).digest(), signature):
        raise ScopeRejected(401, "the request's key scope is not signed by this deployment")
    try:
        scope = _decode_scope(payload)
    except (msgspec.DecodeError, msgspec.ValidationError):
        raise ScopeRejected(401, "the request's key scope is malformed") from None
    if scope.expires_at is not None and now >= scope.expires_at:
        raise ScopeRejected(401, "the request's key scope has expired")
    if not scope.allows(model):
        raise ScopeRejected(403, f"this key scope may not use model {model!r}")
    return scope
