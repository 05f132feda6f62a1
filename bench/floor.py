"""The architecture's floor: what a request costs crossing aiub's shape when nothing else is done.

Issue 18 asks aiub for less added latency than Portkey (one Node process) and a third of
vllm-router's throughput (one Rust process). aiub's shape is fixed by its users: an HTTP gateway
publishes each request on NATS, a router picks a target and forwards it on NATS, a worker calls
the backend and sends the answer back on NATS, every one of them a Python process. This program is
that shape and nothing more, so a compare run can show how much of aiub's overhead is the shape
itself and how much is what aiub does on top (validation, keys, limits, cache, health, fallback,
hedging, metrics, logs, usage):

- `edge`: uvicorn with httptools and uvloop (what the gateway runs on), one raw ASGI callable.
  It reads the body, decodes it once to learn `stream`, publishes it on `floor.requests` with a
  reply subject of its own, and answers with what comes back.
- `router`: decodes each request to read `model` (a router must), and forwards the body unchanged
  on `floor.work` with the same reply subject.
- `worker`: POSTs the body to the backend with aiohttp (what aiub's workers use) and publishes each
  backend read to the reply subject as it arrives; an empty message ends the answer.

Four messages a non-streaming request: the request, its forward, the answer (one backend read,
usually) and the empty end (aiub sends seven: its work order, Accepted, Result and Outcome frames,
docs/benchmarks.md). No error handling beyond a timeout, no cancellation, no health, no auth:
it is a measuring stick, not a gateway.

    python bench/floor.py --port 4300 --backend http://127.0.0.1:8001/v1     # NATS of its own
    bench/compare/compare.sh --gateway floor=http://127.0.0.1:4300 \\
        --gateway-start "floor=.venv/bin/python bench/floor.py --port 4300"  # backend: $STUB_URL
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

REQUESTS, WORK = "floor.requests", "floor.work"
ANSWER_TIMEOUT_S = 60.0


async def _connect(url: str) -> Any:
    import nats

    return await nats.connect(url, max_reconnect_attempts=-1)


async def _read_body(receive: Any) -> bytes:
    body = b""
    while True:
        event: dict[str, Any] = await receive()
        body += bytes(event.get("body", b""))
        if not event.get("more_body"):
            return body


async def _respond(send: Any, status: int, content_type: bytes | None = None, body: bytes = b"") -> None:
    headers = [(b"content-type", content_type)] if content_type else []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _relay(send: Any, queue: asyncio.Queue[bytes], stream: bool) -> None:
    """The worker's messages to the client until the empty one: as they come when streaming, else
    joined (the backend's answer may come in several reads)."""
    chunk = await asyncio.wait_for(queue.get(), ANSWER_TIMEOUT_S)
    if not stream:
        parts = []
        while chunk:
            parts.append(chunk)
            chunk = await asyncio.wait_for(queue.get(), ANSWER_TIMEOUT_S)
        await _respond(send, 200, b"application/json", b"".join(parts))
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
    while chunk:
        await send({"type": "http.response.body", "body": chunk, "more_body": True})
        chunk = await asyncio.wait_for(queue.get(), ANSWER_TIMEOUT_S)
    await send({"type": "http.response.body", "body": b""})


def edge(nats_url: str, port: int) -> None:
    import uvicorn

    waiting: dict[str, asyncio.Queue[bytes]] = {}
    state: dict[str, Any] = {}
    tokens = itertools.count()

    async def on_answer(msg: Any) -> None:
        queue = waiting.get(msg.subject)
        if queue is not None:
            queue.put_nowait(msg.data)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await receive()  # lifespan.startup
            nc = await _connect(nats_url)
            state["nc"], state["inbox"] = nc, nc.new_inbox()
            await nc.subscribe(state["inbox"] + ".*", cb=on_answer)
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
            await nc.close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] != "POST":
            await _respond(send, 404)
            return
        body = await _read_body(receive)
        reply = f"{state['inbox']}.{next(tokens)}"
        queue = waiting[reply] = asyncio.Queue()
        try:
            await state["nc"].publish(REQUESTS, body, reply=reply)
            await _relay(send, queue, orjson.loads(body).get("stream") is True)
        except TimeoutError:
            await _respond(send, 504)
        finally:
            del waiting[reply]

    uvicorn.run(app, host="127.0.0.1", port=port, loop="uvloop", http="httptools", lifespan="on",
                access_log=False, log_level="warning", proxy_headers=False, date_header=False)


async def _router(nats_url: str) -> None:
    nc = await _connect(nats_url)

    async def forward(msg: Any) -> None:
        orjson.loads(msg.data)["model"]  # a router must read what it routes on
        await nc.publish(WORK, msg.data, reply=msg.reply)

    await nc.subscribe(REQUESTS, queue="router", cb=forward)
    await asyncio.Event().wait()


async def _worker(nats_url: str, backend: str) -> None:
    import aiohttp

    nc = await _connect(nats_url)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0), cookie_jar=aiohttp.DummyCookieJar())
    url = backend.rstrip("/") + "/chat/completions"

    async def call(msg: Any) -> None:
        async with session.post(url, data=msg.data, headers={"content-type": "application/json"}) as response:
            async for data in response.content.iter_any():
                await nc.publish(msg.reply, data)
        await nc.publish(msg.reply, b"")

    async def on_work(msg: Any) -> None:
        asyncio.get_running_loop().create_task(call(msg))

    await nc.subscribe(WORK, queue="worker", cb=on_work)
    await asyncio.Event().wait()


def _role(argv: list[str]) -> None:
    import uvloop

    role, nats_url = argv[0], argv[1]
    if role == "edge":
        edge(nats_url, int(argv[2]))
    elif role == "router":
        uvloop.run(_router(nats_url))
    else:
        uvloop.run(_worker(nats_url, argv[2]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=4300)
    parser.add_argument("--backend", default=os.environ.get("STUB_URL"), help="OpenAI base URL (default: $STUB_URL)")
    parser.add_argument("--nats", default=None, help="a NATS to use (default: one of its own on a free port)")
    args = parser.parse_args()
    if not args.backend:
        parser.error("--backend or $STUB_URL is required")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from shared.embedded_nats import EmbeddedNats

    bus = None if args.nats else EmbeddedNats(Path(tempfile.mkdtemp(prefix="floor-nats-"))).start()
    nats_url = args.nats or bus.url  # type: ignore[union-attr]
    me = [sys.executable, __file__, "--role"]
    children = [subprocess.Popen([*me, "router", nats_url]), subprocess.Popen([*me, "worker", nats_url, args.backend]),
                subprocess.Popen([*me, "edge", nats_url, str(args.port)])]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        children[-1].wait()
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait()
        if bus is not None:
            bus.stop()
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--role":
        _role(sys.argv[2:])
    else:
        sys.exit(main())
