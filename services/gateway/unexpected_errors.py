"""The last line of defence: a bug answers 500 and the connection stays usable.

Starlette's handler for `Exception` responds and then re-raises, so that the server logs it;
uvicorn then closes the connection, and a keep-alive client's next request on it fails with a
reset. This middleware answers instead and swallows the exception (logged here, once). A client
that hung up mid-upload is not an error at all. A front door's request (its dialect set on the
request's state, dialects/__init__.py) is answered in its dialect's shape.
"""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import logs
from shared.errors import AiubError, error_json

log = logs.get("gateway")
_INTERNAL = error_json(AiubError("internal error").body())


class ContainUnexpectedErrors:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:
            log.info("client_gone_during_upload", path=scope.get("path"))
        except Exception as e:
            log.error("unhandled_error", error=repr(e), path=scope.get("path"), exc_info=True)
            if started:  # too late for a status: the stream's own error handling had its turn
                raise
            dialect = scope.get("state", {}).get("dialect")
            body = _INTERNAL if dialect is None else dialect.error(500, AiubError("internal error").body())
            await Response(body, status_code=500, media_type="application/json")(scope, receive, send)
