"""One request's id across every service: which id, how it travels, how log lines carry it.

The id an operator greps for is the one the client saw in the `x-request-id` response header:
the client's own `x-request-id` when it sent a safe one, else the gateway's generated id. It
travels in the NATS header `Aiub-Request-Id` on each hop of the request (gateway → router →
worker) and inside `InferenceRequest` as well, so a reader that ignores headers still has it.
Each service binds it into structlog's context in the task that serves the request (the
router and the worker run one task per message), so every log line of that task carries it
without each call site passing it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.log_library import structlog
from shared.messages import InferenceRequest

HEADER = "Aiub-Request-Id"


def request_id(request: InferenceRequest) -> str:
    """The id the client was given: its own `x-request-id` if it sent one, else the generated one."""
    return request.client_request_id or request.id


def headers(request: InferenceRequest) -> dict[str, str]:
    return {HEADER: request_id(request)}


def from_headers(message_headers: Mapping[str, str] | None, request: InferenceRequest) -> str:
    """The header's id when a hop sent one, else the one in the request body."""
    if message_headers:
        value = message_headers.get(HEADER)
        if value:
            return value
    return request_id(request)


def bind(request_id: str, **fields: Any) -> None:
    """Every log line of the current task (and tasks it starts) carries these from now on."""
    structlog.contextvars.bind_contextvars(request_id=request_id, **fields)
