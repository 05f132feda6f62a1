"""`POST /v1/chat/completions/` is the same endpoint as without the slash.

Starlette would answer it with a 307 redirect, which neither curl nor the HTTP clients under
most SDKs follow for a POST by default: the caller gets an empty body instead of an answer.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class StripTrailingSlash:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] == "http" and len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
        await self.app(scope, receive, send)
