"""`aiub gateway`: the HTTP surface as a process (uvicorn with uvloop and httptools)."""

from __future__ import annotations

import uvicorn

from services.gateway.app import create_app
from shared.config import Config


def serve(config: Config, host: str, port: int, nats_url: str | None) -> int:
    app = create_app(config, nats_url)
    uvicorn.run(app, host=host, port=port, loop="uvloop", http="httptools", log_level="warning",
                access_log=False, timeout_graceful_shutdown=10, server_header=False)
    return 0
