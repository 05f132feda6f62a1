"""The gateway's own answers: JSON, and an error in OpenAI's shape (or a front door's) with the headers it carries."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi.responses import Response

from shared.errors import error_json, retry_after_header
from shared.messages import ErrorBody

if TYPE_CHECKING:
    from services.gateway.dialects import Dialect

JSON = "application/json"
# HEAD beside GET on every read endpoint, as RFC 9110 asks of a server (a load balancer's or
# monitor's check uses it).
READ_METHODS = ["GET", "HEAD"]


def error_response(status: int, body: ErrorBody, request_id: str | None = None,
                   retry_after: float | None = None, extra: dict[str, str] | None = None,
                   dialect: Dialect | None = None) -> Response:
    headers = dict(extra) if extra else {}
    if request_id:
        headers["x-request-id"] = request_id
    if retry_after is not None:
        headers["retry-after"] = retry_after_header(retry_after)
    content = error_json(body) if dialect is None else dialect.error(status, body)
    return Response(content, status_code=status, media_type=JSON, headers=headers)
