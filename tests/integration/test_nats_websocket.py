"""A NATS URL over WebSocket still connects, although aiub imports nats-py without aiohttp
(shared/nats_library.py): a real nats-server with its websocket listener, and a fresh interpreter
that imports nats as `aiub` does and round-trips a message through `ws://`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shared.embedded_nats import EmbeddedNats, free_port

ROOT = Path(__file__).resolve().parents[2]

ROUND_TRIP = """
import asyncio, sys
from shared.nats_library import nats, servers

async def main(url):
    nc = await nats.connect(servers=servers(url), connect_timeout=5, max_reconnect_attempts=0)
    sub = await nc.subscribe("ws.test")
    await nc.publish("ws.test", b"over websocket")
    print((await sub.next_msg(timeout=5)).data.decode())
    await nc.close()

asyncio.run(main(sys.argv[1]))
"""


def test_a_websocket_nats_url_connects_and_carries_messages(tmp_path: Path) -> None:
    port = free_port()
    with EmbeddedNats(tmp_path / "nats", extra_config=f'websocket {{ listen: "127.0.0.1:{port}"\n no_tls: true }}\n'):
        done = subprocess.run([sys.executable, "-c", ROUND_TRIP, f"ws://127.0.0.1:{port}"], cwd=ROOT,
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "over websocket"
