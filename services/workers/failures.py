"""How a backend failure becomes the error a client sees, and whether another provider may retry it.

Rules: a backend's 4xx speaks about the request (400/404/422: not retryable, status passed
through), except 401/403 (the gateway's own credentials for that provider are wrong: 502,
not retryable: every retry would fail the same way on this provider, and the client's key is
not the problem) and 408/409/429 (transient: retryable, 429 keeps its Retry-After). 5xx,
connection errors, and timeouts before the first token are retryable. Error text never leaks
URLs, hosts or credentials of the backend.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.errors import (
    AiubError,
    BadRequest,
    ClientError,
    ContextLengthExceeded,
    DeadlineExceeded,
    ModelNotFound,
    RateLimited,
    UnsupportedCapability,
    UpstreamError,
)
from shared.messages import ErrorBody, OutcomeKind

_SECRETS = re.compile(
    r"(https?://\S+|\b(?:sk|pk|rk)-[A-Za-z0-9_\-]{8,}|Bearer\s+\S+|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b"
    r"|\blocalhost:\d+\b)",
    re.IGNORECASE,
)
_MAX_MESSAGE = 500
# How backends say a prompt does not fit: OpenAI and vLLM "maximum context length" /
# "maximum model length", llama.cpp "exceeds the available context size", Ollama "context
# length", Anthropic "prompt is too long". Marked so the caller moves to a larger-context model.
_CONTEXT_EXCEEDED = re.compile(r"context[ _-]?(?:length|window|size)|maximum model length|prompt (?:is )?too long",
                               re.IGNORECASE)


@dataclass(frozen=True)
class Failure:
    """What the client is told (one class of the error tree) and what it means for the provider."""

    exc: AiubError
    retryable: bool
    outcome: OutcomeKind

    @property
    def status(self) -> int:
        return self.exc.status

    @property
    def error(self) -> ErrorBody:
        return self.exc.body()

    @property
    def retry_after(self) -> float | None:
        return self.exc.retry_after


def scrub(message: str) -> str:
    return _SECRETS.sub("[redacted]", message)[:_MAX_MESSAGE]


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: rare from LLM backends; the breaker's own period applies


def from_status(provider: str, status: int, backend_message: str | None, retry_after: str | None = None) -> Failure:
    detail = scrub(backend_message) if backend_message else f"HTTP {status}"
    if status in (401, 403):
        return Failure(UpstreamError(f"provider {provider} rejected aiub's credentials: {detail}",
                                     code="provider_auth_failed"), False, "client_error")
    if status == 429:
        return Failure(RateLimited(f"provider {provider} is rate limiting: {detail}",
                                   retry_after=parse_retry_after(retry_after)), True, "rate_limited")
    if status in (408, 409):
        return Failure(UpstreamError(detail, status=status, code="upstream_transient"), True, "server_error")
    if status in (400, 413, 422) and backend_message and _CONTEXT_EXCEEDED.search(backend_message):
        return Failure(ContextLengthExceeded(detail), False, "client_error")
    if status == 404:
        return Failure(ModelNotFound(detail), False, "client_error")
    if 400 <= status < 500:
        return Failure(ClientError(status, detail), False, "client_error")
    public = status if status in (500, 502, 503, 504) else 502
    return Failure(UpstreamError(f"provider {provider} failed: {detail}", status=public, code="upstream_error",
                                 retry_after=parse_retry_after(retry_after) if status == 503 else None),
                   True, "server_error")


def connection_failed(provider: str, what: str) -> Failure:
    return Failure(UpstreamError(f"provider {provider} is unreachable ({what})", code="connection_error"),
                   True, "connection")


def timed_out(provider: str, before_first_token: bool) -> Failure:
    return Failure(DeadlineExceeded(f"provider {provider} timed out", code="upstream_timeout"),
                   before_first_token, "timeout")


def truncated(provider: str, detail: str, before_first_token: bool) -> Failure:
    return Failure(UpstreamError(f"provider {provider} stream broke off: {scrub(detail)}", code="stream_truncated"),
                   before_first_token, "truncated")


def unsupported(provider: str, kind: str) -> Failure:
    return Failure(UnsupportedCapability(f"provider {provider} does not support {kind} requests"),
                   False, "client_error")


def invalid_request(message: str, param: str | None) -> Failure:
    """A valid OpenAI request this provider's API cannot express (an adapter's `InvalidRequest`)."""
    return Failure(BadRequest(message, param=param), False, "client_error")


def missing_api_key(provider: str, env_var: str | None) -> Failure:
    # Nothing was sent, and another provider may well serve the request: retryable, and not
    # the provider's fault, so it never opens its circuit.
    where = f" (set {env_var})" if env_var else ""
    return Failure(UpstreamError(f"provider {provider} has no API key configured{where}",
                                 code="provider_auth_missing"), True, "client_error")
