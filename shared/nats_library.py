"""nats-py without aiohttp, and the servers a NATS URL names.

nats-py imports aiohttp at its own import for one transport, WebSocket (`ws://`, `wss://`). aiub
connects over TCP (`nats://`, `tls://`), and of its services only the workers use aiohttp (their
backend client; `aiub dashboard --web` imports it for itself). Imported without it
(shared/lean_imports.py), nats costs the router, health, the gateway and `aiub up` ~0.1-0.3 s of
CPU less at every start (docs/benchmarks.md, "Start"). `cli/main.py` imports this module before
anything else imports nats. `servers` hands nats-py aiohttp back when a URL does ask for
WebSocket, so such a URL still connects.
"""

from __future__ import annotations

from shared.lean_imports import hidden

with hidden("aiohttp"):
    import nats as nats
    from nats.aio import transport as _transport

WEBSOCKET_SCHEMES = ("ws://", "wss://")


def servers(url: str) -> list[str]:
    """A NATS URL's servers: a comma-separated list seeds a cluster connection (docs/deployment.md);
    the client learns the other members from the server and fails over between them."""
    listed = [u.strip() for u in url.split(",") if u.strip()]
    # nats-py's WebSocket transport reads the module globals it set at import (both None then).
    if _transport.aiohttp is None and any(  # type: ignore[attr-defined]
            u.startswith(WEBSOCKET_SCHEMES) for u in listed):
        import aiohttp
        import multidict

        _transport.aiohttp, _transport.multidict = aiohttp, multidict
    return listed
