"""One exception tree for everything a client can be told, and its OpenAI error JSON.

    AiubError (500 internal_error)
    ├── BadRequest (400 invalid_request_error)
    │   └── UnsupportedCapability (400)
    ├── Unauthorized (401 authentication_error)
    ├── ModelNotFound (404 model_not_found)
    ├── PayloadTooLarge (413)
    ├── HeadersTooLarge (431)
    ├── RateLimited (429, Retry-After)
    ├── UpstreamError (backend said no: status and body as the backend's adapter mapped them)
    ├── ServiceUnavailable (503: no router, no worker, every candidate down)
    └── DeadlineExceeded (504)
"""

from __future__ import annotations

import math

import msgspec

from shared.messages import ErrorBody


class AiubError(Exception):
    status = 500
    type = "internal_error"
    code: str | None = None

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        self.retry_after = retry_after

    def body(self) -> ErrorBody:
        return ErrorBody(message=self.message, type=self.type, param=self.param, code=self.code)


class BadRequest(AiubError):
    status = 400
    type = "invalid_request_error"


class UnsupportedCapability(BadRequest):
    code = "unsupported_capability"


class Unauthorized(AiubError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class ModelNotFound(AiubError):
    status = 404
    type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(AiubError):
    status = 413
    type = "invalid_request_error"
    code = "payload_too_large"


class RequestTimeout(AiubError):
    status = 408
    type = "invalid_request_error"
    code = "request_timeout"
    # The unread rest of the body may still come, and would be parsed as the next request.
    headers = {"connection": "close"}


class HeadersTooLarge(AiubError):
    status = 431
    type = "invalid_request_error"
    code = "headers_too_large"


class RateLimited(AiubError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class ServiceUnavailable(AiubError):
    status = 503
    type = "service_unavailable"
    code = "no_provider_available"


class DeadlineExceeded(AiubError):
    status = 504
    type = "timeout"
    code = "deadline_exceeded"


class UpstreamError(AiubError):
    """An error frame as a worker or router sent it: status and body pass through unchanged."""

    def __init__(self, status: int, body: ErrorBody, retry_after: float | None = None) -> None:
        super().__init__(body.message, param=body.param, code=body.code, retry_after=retry_after)
        self.status = status
        self.type = body.type


class _Envelope(msgspec.Struct):
    error: ErrorBody


_encode = msgspec.json.Encoder().encode


def error_json(body: ErrorBody) -> bytes:
    return _encode(_Envelope(error=body))


def retry_after_header(seconds: float) -> str:
    """Whole seconds, rounded up: rounded down, a client that obeys it comes back too early and
    is refused again."""
    return str(max(1, math.ceil(seconds)))
