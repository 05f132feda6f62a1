"""`aiub gateway`: the HTTP surface as a process (uvicorn with uvloop and httptools)."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn

from services.gateway.app import create_app
from services.gateway.auth import StartupRefused
from services.gateway.header_limits import limited_protocol
from shared import spans
from shared.config import Config


def serve(config: Config, host: str, port: int, nats_url: str | None, *, insecure_no_auth: bool = False,
          state_dir: str | Path = ".aiub") -> int:
    try:
        app = create_app(config, nats_url, host=host, insecure_no_auth=insecure_no_auth, state_dir=Path(state_dir),
                         tracer_provider=spans.installed())
    except StartupRefused as e:
        print(f"aiub gateway: {e}", file=sys.stderr)
        return 2
    limits = config.runtime.limits
    protocol = limited_protocol(limits.max_header_bytes, limits.max_headers, limits.header_timeout_s)
    uvicorn.run(app, host=host, port=port, loop="uvloop", http=protocol,
                log_level="warning", access_log=False, timeout_graceful_shutdown=10, server_header=False,
                proxy_headers=False, date_header=False)
    return 0
