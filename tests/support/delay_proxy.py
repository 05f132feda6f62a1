"""A TCP proxy that delays every byte by a fixed time, each way: latency where `tc netem` is not.

  python -m tests.support.delay_proxy --listen 0.0.0.0:4223 --to 127.0.0.1:4222 --delay-ms 20

Each direction of each connection is a queue of (due time, bytes): a reader stamps what it read
with now + delay, a writer sends it when due. So bytes keep their order, every byte waits the
same delay (20 ms each way: a 40 ms round trip), and the delay is not paid once per message in
flight (a stream of tokens keeps its cadence, shifted by the delay). TLS passes through
untouched: the client still verifies the server's certificate against the address it dialled.
An end of stream is delayed like data; a reset on one side closes both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import time


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay_s: float) -> None:
    queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()  # None: the end

    async def send() -> None:
        while True:
            due, data = await queue.get()
            if (wait := due - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    try:
        while data := await reader.read(65536):
            queue.put_nowait((time.monotonic() + delay_s, data))
        queue.put_nowait((time.monotonic() + delay_s, None))
        await sender
    finally:
        sender.cancel()


async def _serve(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, host: str, port: int,
                 delay_s: float) -> None:
    try:
        upstream_r, upstream_w = await asyncio.open_connection(host, port)
    except OSError:
        client_w.close()
        return
    pumps = [asyncio.create_task(_pump(client_r, upstream_w, delay_s)),
             asyncio.create_task(_pump(upstream_r, client_w, delay_s))]
    with contextlib.suppress(OSError):
        await asyncio.gather(*pumps)
    for task in pumps:
        task.cancel()
    for w in (client_w, upstream_w):
        w.close()


async def serve(listen: str, to: str, delay_ms: float) -> None:
    lhost, lport = listen.rsplit(":", 1)
    thost, tport = to.rsplit(":", 1)
    server = await asyncio.start_server(lambda r, w: _serve(r, w, thost, int(tport), delay_ms / 1000),
                                        lhost, int(lport))
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--listen", required=True, help="HOST:PORT")
    ap.add_argument("--to", required=True, help="HOST:PORT")
    ap.add_argument("--delay-ms", type=float, required=True, help="added to each direction")
    a = ap.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(a.listen, a.to, a.delay_ms))


if __name__ == "__main__":
    main()
