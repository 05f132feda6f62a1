"""`aiub dashboard --web`: the same Textual dashboard in a browser, served by textual-serve.

textual-serve runs one `aiub dashboard` process per browser tab (the command below, with the
stack already resolved) and relays its screen over a websocket; nothing here draws anything.
What this module adds is the gate in front of it:
- With a master key configured, every path needs a session: `/?token=<master key>` (or the form
  a browser without one is shown) sets an HttpOnly, SameSite=Strict cookie holding an HMAC of the
  key (never the key itself) and redirects to `/`, so the key leaves the address bar at once;
  `Authorization: Bearer <master key>` works too. A wrong key is a 401 and sets nothing.
- Without a master key it serves loopback only; any other `--host` refuses to start.
- The websocket (`/ws`) also needs an `Origin` equal to the page's own, so another site open in
  the same browser cannot drive the dashboard with the operator's cookie.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import ipaddress
import shlex
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

from aiohttp import web
from textual_serve.server import Server

COOKIE = "aiub_dashboard"

Verdict = Literal["allow", "start_session", "login", "refuse", "foreign_origin"]


def session_token(master_key: str) -> str:
    return hmac.new(master_key.encode(), b"aiub dashboard session", hashlib.sha256).hexdigest()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Gate:
    """Who may see the dashboard; `master_key` None: no key (loopback only, checked at start)."""

    master_key: str | None

    def decide(self, *, path: str, token: str | None, cookie: str | None, bearer: str | None,
               origin: str | None, host: str) -> Verdict:
        if path == "/ws" and origin is not None and urlsplit(origin).netloc != host:
            return "foreign_origin"
        if self.master_key is None:
            return "allow"
        if token is not None:
            return "start_session" if hmac.compare_digest(token, self.master_key) else "refuse"
        if bearer is not None and hmac.compare_digest(bearer, self.master_key):
            return "allow"
        if cookie is not None and hmac.compare_digest(cookie, session_token(self.master_key)):
            return "allow"
        return "login" if path == "/" else "refuse"


_LOGIN = """<!DOCTYPE html><html><head><title>aiub dashboard</title></head>
<body style="font-family: monospace; background: #0c181f; color: #eee; padding: 3em">
<h1>aiub dashboard</h1><p>{message}</p>
<form method="get" action="/"><label>master key <input type="password" name="token" autofocus></label>
<button type="submit">open</button></form></body></html>"""


def _login(status: int, message: str) -> web.Response:
    return web.Response(status=status, text=_LOGIN.format(message=html.escape(message)), content_type="text/html",
                        headers={"Cache-Control": "no-store"})


class DashboardServer(Server):
    """textual-serve's server behind the `Gate`, with the websocket URL taken from the address the
    browser used (so `--host 0.0.0.0` works from another machine)."""

    def __init__(self, command: str, host: str, port: int, master_key: str | None) -> None:
        super().__init__(command, host=host, port=port, title="aiub dashboard")
        self._gate = Gate(master_key)
        self._session = session_token(master_key) if master_key else ""

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(self._check)
        return app

    async def handle_index(self, request: web.Request) -> web.StreamResponse:
        self.public_url = f"{request.scheme}://{request.host}"  # no await before it is read: no race
        return await super().handle_index(request)

    @web.middleware
    async def _check(self, request: web.Request,
                     handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
        authorization = request.headers.get("Authorization", "")
        verdict = self._gate.decide(
            path=request.path, token=request.query.get("token"), cookie=request.cookies.get(COOKIE),
            bearer=authorization[7:] if authorization.lower().startswith("bearer ") else None,
            origin=request.headers.get("Origin"), host=request.host)
        match verdict:
            case "allow":
                return await handler(request)
            case "start_session":
                response = web.HTTPSeeOther("/")
                response.set_cookie(COOKIE, self._session, httponly=True, samesite="Strict", path="/",
                                    secure=request.secure)
                raise response
            case "login":
                return _login(401, "This dashboard needs the gateway's master key.")
            case "foreign_origin":
                return web.Response(status=403, text="the dashboard's websocket serves its own page only")
        return _login(401, "That is not the master key." if "token" in request.query else "Log in first.")


def command(nats_url: str, metrics: Sequence[str], state_dir: str | None, config_dir: str, refresh_s: float,
            window_s: float) -> str:
    """The terminal dashboard each browser tab runs, on the stack this process already found."""
    argv = [sys.executable, "-m", "cli.main", "dashboard", "--nats", nats_url, "--config", config_dir,
            "--refresh", str(refresh_s), "--window", str(window_s), "--metrics", *metrics]
    if state_dir is not None:
        argv[4:4] = ["--state-dir", state_dir]
    return shlex.join(argv)


def serve(dashboard: str, host: str, port: int, master_key: str | None) -> int:
    if master_key is None and not is_loopback(host):
        print(f"aiub dashboard --web: no master key is configured, so it serves loopback only, not {host}; "
              "set the gateway's master key (AIUB_MASTER_KEY) to serve other hosts", file=sys.stderr)
        return 2
    print(f"aiub dashboard: http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/"
          + (" (log in with the master key)" if master_key else " (loopback, no master key)"), file=sys.stderr)
    DashboardServer(dashboard, host, port, master_key).serve()
    return 0
