"""One exception tree for everything a client can be told, and its OpenAI error JSON.

Every error body aiub sends, over HTTP or in an `Error` frame on the bus, comes from one of
these classes: the class fixes the HTTP status and the OpenAI `type`, and a default `code`
that a raise may make more specific (`code="worker_shutdown"`). Two classes take their status
from what they relay (marked): a backend's 4xx, Starlette's 404/405, a backend's 408/409/5xx.
tests/unit/test_errors.py reads this drawing and compares it with the classes.

    class                          status  type                    code
    AiubError                      500     internal_error          -
    ├── BadRequest                 400     invalid_request_error   -
    │   ├── UnsupportedCapability  400     invalid_request_error   unsupported_capability
    │   ├── ContextLengthExceeded  400     invalid_request_error   context_length_exceeded
    │   ├── ModelNotFound          404     invalid_request_error   model_not_found
    │   ├── RequestTimeout         408     invalid_request_error   request_timeout (and Connection: close)
    │   ├── PayloadTooLarge        413     invalid_request_error   payload_too_large
    │   ├── UnsupportedEncoding    415     invalid_request_error   unsupported_content_encoding
    │   ├── HeadersTooLarge        431     invalid_request_error   headers_too_large
    │   └── ClientError            4xx     invalid_request_error   -  (status relayed: a backend's, Starlette's)
    ├── Unauthorized               401     authentication_error    invalid_api_key
    ├── Forbidden                  403     permission_error        -
    ├── RateLimited                429     rate_limit_error        rate_limit_exceeded (and Retry-After)
    ├── UpstreamError              502     upstream_error          -  (or a backend's 408/409/5xx, relayed)
    ├── ServiceUnavailable         503     service_unavailable     no_provider_available (and Retry-After)
    │   └── RouterFailed           500     service_unavailable     router_error
    └── DeadlineExceeded           504     timeout                 deadline_exceeded

One place maps an error to the wire: `body()` (OpenAI's error object), `frame()` (the bus's
`Error` frame), `error_json` (the HTTP body), `retry_after_header`.
"""

from __future__ import annotations

import math

import msgspec

from shared.messages import CONTEXT_LENGTH_EXCEEDED, Error, ErrorBody


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

    # Equal when the client would be told the same: a pure core (the routing decision) returns
    # one as a value, and the same inputs must give an equal answer.
    def _told(self) -> tuple[object, int, ErrorBody, float | None]:
        return type(self), self.status, self.body(), self.retry_after

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AiubError) and self._told() == other._told()

    def __hash__(self) -> int:
        return hash(self._told())

    def body(self) -> ErrorBody:
        return ErrorBody(message=self.message, type=self.type, param=self.param, code=self.code)

    def frame(self, attempt: str, seq: int, *, retryable: bool = False, provider: str | None = None) -> Error:
        """This error as an `Error` frame on the bus (the caller relays status and body unchanged)."""
        return Error(attempt=attempt, seq=seq, status=self.status, error=self.body(), retryable=retryable,
                     retry_after=self.retry_after, provider=provider)


class BadRequest(AiubError):
    status = 400
    type = "invalid_request_error"


class UnsupportedCapability(BadRequest):
    code = "unsupported_capability"


class ContextLengthExceeded(BadRequest):
    """The prompt does not fit: the caller moves to a larger-context model, not another provider."""

    code = CONTEXT_LENGTH_EXCEEDED


class ModelNotFound(BadRequest):
    status = 404
    code = "model_not_found"


class RequestTimeout(BadRequest):
    status = 408
    code = "request_timeout"
    # The unread rest of the body may still come, and would be parsed as the next request.
    headers = {"connection": "close"}


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"


class UnsupportedEncoding(BadRequest):
    status = 415
    code = "unsupported_content_encoding"


class HeadersTooLarge(BadRequest):
    status = 431
    code = "headers_too_large"


class ClientError(BadRequest):
    """A 4xx whose status someone else decided: a backend's (passed through), Starlette's 404/405."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        """`headers`: what the status needs beside the body (a 405's Allow)."""
        if not 400 <= status < 500:
            raise ValueError(f"a client error's status is 4xx, not {status}")
        super().__init__(message, param=param, code=code)
        self.status = status
        self.headers = headers or {}


class Unauthorized(AiubError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class Forbidden(AiubError):
    status = 403
    type = "permission_error"


class RateLimited(AiubError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class UpstreamError(AiubError):
    """A backend (or the worker in front of it) failed: 502, or the backend's own 408/409/5xx."""

    status = 502
    type = "upstream_error"

    def __init__(self, message: str, *, status: int = 502, code: str | None = None,
                 retry_after: float | None = None) -> None:
        if status not in (408, 409) and not 500 <= status < 600:
            raise ValueError(f"an upstream error's status is 408, 409 or 5xx, not {status}")
        super().__init__(message, code=code, retry_after=retry_after)
        self.status = status


class ServiceUnavailable(AiubError):
    status = 503
    type = "service_unavailable"
    code = "no_provider_available"


class RouterFailed(ServiceUnavailable):
    """The router broke while placing a request: a 500, typed like the router's other refusals."""

    status = 500
    code = "router_error"


class DeadlineExceeded(AiubError):
    status = 504
    type = "timeout"
    code = "deadline_exceeded"


class _Envelope(msgspec.Struct):
    error: ErrorBody


_encode = msgspec.json.Encoder().encode


def error_json(body: ErrorBody) -> bytes:
    return _encode(_Envelope(error=body))


def retry_after_header(seconds: float) -> str:
    """Whole seconds, rounded up: rounded down, a client that obeys it comes back too early and
    is refused again."""
    return str(max(1, math.ceil(seconds)))
