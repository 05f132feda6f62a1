"""The simulator's HTTP/1.1 server: a raw asyncio.Protocol with the httptools parser on uvloop.

It sits under the gateway benchmarks, so it avoids frameworks (the reference stub in
the bench harness measured this shape fastest): keep-alive, pipelined requests answered in order,
chunked transfer for streams.  Replies without delays are written in one synchronous
`transport.write`; only delayed replies become a task, which paces tokens with asyncio.sleep
and waits on `pause_writing`/`resume_writing` so a slow reader is never buffered unboundedly.

Accounting (tests depend on it): a request is `active` from its last byte until its reply is
fully written (`completed`), the client closes the connection (`aborted`: noticed at once in
`connection_lost`, which also cancels generation) or a drop_after knob closes it (`dropped`).
/_sim/* control requests are not counted.

Per request the order is: route -> credentials (`routes.auth_failure`: a Bearer key when one is
configured, Anthropic's x-api-key and anthropic-version) -> parse JSON -> apply knob overrides
(x-simulator header, then the body's "simulator" field) -> validate model and fields -> hang ->
injected error -> reply. Flavors and their paths are in `routes`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any, cast

import httptools
import orjson

from services.simulator.app import App
from services.simulator.engine import prompt_parts
from services.simulator.knobs import Knobs, merge, parse_overrides
from services.simulator.openai_wire import WireError
from services.simulator.reply import Reply, StreamReply
from services.simulator.routes import TEXT, ModelRoute, Simple, auth_failure, error_response, unrouted
from services.simulator.settings import DEFAULT_MODELS, Flavor, SimulatorSettings

__all__ = ["DEFAULT_MODELS", "Flavor", "Simulator", "SimulatorSettings", "run", "start_simulator"]


# ----------------------------------------------------------------------------- HTTP framing
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def _head(status: int, ctype: bytes, length: int | None, keep_alive: bool,
          extra: bytes = b"") -> bytes:
    framing = (b"transfer-encoding: chunked\r\ncache-control: no-cache\r\n" if length is None
               else b"content-length: %d\r\n" % length)
    return (b"HTTP/1.1 %d %s\r\ncontent-type: %s\r\n%s%sconnection: %s\r\n\r\n"
            % (status, _REASONS.get(status, b"Unknown"), ctype, framing, extra,
               b"keep-alive" if keep_alive else b"close"))


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


_LAST_CHUNK = b"0\r\n\r\n"
# Headers a route may need beyond x-simulator: credentials and Anthropic's API version.
_KEPT_HEADERS = frozenset((b"authorization", b"x-api-key", b"anthropic-version"))
# Longer undelayed streams go through the paced path too, so that backpressure bounds memory.
_SYNC_STREAM_LIMIT = 512


def _retry_after(seconds: float) -> bytes:
    value = str(int(seconds)) if float(seconds).is_integer() else str(seconds)
    return b"retry-after: " + value.encode() + b"\r\n"


# ----------------------------------------------------------------------------- connection
@dataclass(slots=True)
class _Request:
    method: str
    path: str
    body: bytes
    xsim: bytes | None  # the x-simulator header, if sent
    keep_alive: bool
    headers: dict[str, bytes]  # the credential headers, lower-cased names (see _KEPT_HEADERS)


class _Conn(asyncio.Protocol):
    """One client connection; answers its requests strictly in order (HTTP/1.1 pipelining)."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.queue: deque[_Request] = deque()
        self.busy = False  # a reply (or a hang) is pending: queue further requests
        self.inflight = False  # the current request is counted as active
        self.closed = False
        self.paused = False
        self.task: asyncio.Task[None] | None = None
        self.drain: asyncio.Future[None] | None = None
        self.keep_alive = True
        self.head_only = False
        self._url = b""
        self._body: list[bytes] = []
        self._xsim: bytes | None = None
        self._headers: dict[str, bytes] = {}

    # -- transport callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.app.conns.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.app.conns.discard(self)
        if self.inflight:
            self.inflight = False
            self.app.stats.active -= 1
            if not self.app.closing:
                self.app.stats.aborted += 1
        if self.task is not None and not self.task.done():
            self.task.cancel()  # stop generating for a reader that is gone
        self._wake()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._wake()

    def _wake(self) -> None:
        if self.drain is not None and not self.drain.done():
            self.drain.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self._raw_close(_head(400, TEXT, 11, False) + b"Bad Request")
        except httptools.HttpParserUpgrade:
            self._raw_close(_head(501, TEXT, 15, False) + b"Not Implemented")

    def _raw_close(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)
        self.transport.close()

    # -- parser callbacks
    def on_message_begin(self) -> None:
        self._url = b""
        self._body = []
        self._xsim = None
        self._headers = {}

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"x-simulator":
            self._xsim = value
        elif lowered in _KEPT_HEADERS:
            self._headers[lowered.decode()] = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.queue.append(_Request(
            self.parser.get_method().decode(), self._url.split(b"?", 1)[0].decode("latin-1"),
            b"".join(self._body), self._xsim, self.parser.should_keep_alive(), self._headers))
        self._pump()

    # -- request dispatch
    def _pump(self) -> None:
        while self.queue and not self.busy and not self.closed:
            self._handle(self.queue.popleft())

    def _handle(self, req: _Request) -> None:
        app = self.app
        self.keep_alive = req.keep_alive
        self.head_only = req.method == "HEAD"
        if not req.path.startswith("/_sim/"):
            stats = app.stats
            stats.requests += 1
            stats.active += 1
            stats.by_path[req.path] = stats.by_path.get(req.path, 0) + 1
            self.inflight = True
        methods = app.routes.get(req.path)
        flavor = app.settings.flavor
        if methods is None:
            self._send(404, *unrouted(flavor, 404))
            return
        route = methods.get(req.method) or (methods.get("GET") if self.head_only else None)
        if route is None:
            allow = b"allow: " + ", ".join(methods).encode() + b"\r\n"
            self._send(405, *unrouted(flavor, 405), allow)
            return
        refused = None if req.path.startswith("/_sim/") else auth_failure(app, req.headers)
        if refused is not None:
            self._send(*refused)
            return
        if isinstance(route, ModelRoute):
            self._model_request(route, req)
        else:
            self._send(*cast(Simple, route)(app, req.body))

    def _model_request(self, route: ModelRoute, req: _Request) -> None:
        t0 = time.perf_counter_ns()
        app = self.app
        try:
            body, knobs = self._decode(req)
            model = app.resolve_model(route.dialect, body.get("model"))
            reply = route.build(body, knobs, model, app.next_id(), int(time.time()))
        except WireError as err:
            self._send(err.status, *error_response(route.dialect, err.status, err.message,
                                                   err.param))
            return
        except Exception as exc:  # a simulator bug must answer 500, not kill the connection
            self._send(500, *error_response(route.dialect, 500, f"simulator error: {exc!r}"))
            return
        if knobs.hang:
            self.busy = True  # stays active until the client gives up
            return
        if knobs.error_rate > 0 and app.rng.random() < knobs.error_rate:
            app.stats.injected_errors += 1
            status = knobs.error_status
            extra = (_retry_after(knobs.retry_after)
                     if knobs.retry_after is not None and status in (429, 503) else b"")
            msg = f"simulated failure (HTTP {status})"
            self._send(status, *error_response(route.dialect, status, msg), extra)
            return
        if app.gate is not None and (parts := prompt_parts(body)):
            self.busy = True
            self.task = asyncio.get_running_loop().create_task(self._engine_paced(reply, knobs, t0, parts))
        elif knobs.delayed or (reply.stream and reply.n > _SYNC_STREAM_LIMIT):
            self.busy = True
            self.task = asyncio.get_running_loop().create_task(self._paced(reply, knobs, t0))
        elif reply.stream:
            self._stream_now(cast(StreamReply, reply), knobs, t0)
        elif knobs.drop_after is not None:
            self._drop(abort=True)
        else:
            self._send(200, reply.content_type, reply.full(time.perf_counter_ns() - t0))

    def _decode(self, req: _Request) -> tuple[dict[str, Any], Knobs]:
        if not req.body:
            raise WireError(400, "missing request body")
        try:
            body = orjson.loads(req.body)
        except orjson.JSONDecodeError as exc:
            raise WireError(400, f"Invalid JSON body: {exc}") from None
        if not isinstance(body, dict):
            raise WireError(400, "request body must be a JSON object")
        knobs = self.app.knobs
        try:
            if req.xsim is not None:
                knobs = merge(knobs, parse_overrides(req.xsim))
            if "simulator" in body:
                knobs = merge(knobs, body["simulator"])
        except ValueError as exc:
            raise WireError(400, str(exc), "simulator") from None
        return body, knobs

    # -- writing replies
    def _send(self, status: int, ctype: bytes, body: bytes, extra: bytes = b"") -> None:
        assert self.transport is not None
        head = _head(status, ctype, len(body), self.keep_alive, extra)
        self.transport.write(head if self.head_only else head + body)
        self._complete()

    def _complete(self) -> None:
        if self.inflight:
            self.inflight = False
            self.app.stats.active -= 1
            self.app.stats.completed += 1
        if not self.keep_alive and self.transport is not None:
            self.queue.clear()
            self.busy = True  # nothing more on a connection we are closing
            self.transport.close()

    def _drop(self, abort: bool) -> None:
        """drop_after: end the connection mid-reply, as a crashing backend would."""
        assert self.transport is not None
        if self.inflight:
            self.inflight = False
            self.app.stats.active -= 1
            self.app.stats.dropped += 1
        self.queue.clear()
        self.busy = True
        # abort() sends RST and discards unsent data; close() first flushes the tokens
        # already written, so a stream is cut exactly after drop_after tokens.
        if abort:
            self.transport.abort()
        else:
            self.transport.close()

    def _stream_now(self, reply: StreamReply, knobs: Knobs, t0: int) -> None:
        assert self.transport is not None
        parts = [_head(200, reply.content_type, None, self.keep_alive)]
        prelude = reply.prelude()
        if prelude:
            parts.append(_chunk(prelude))
        cut = knobs.drop_after is not None and knobs.drop_after <= reply.n
        for i in range(cast(int, knobs.drop_after) if cut else reply.n):
            parts.append(_chunk(reply.event(i)))
        if cut:
            self.transport.write(b"".join(parts))
            self._drop(abort=False)
            return
        parts.append(_chunk(reply.tail(time.perf_counter_ns() - t0)))
        parts.append(_LAST_CHUNK)
        self.transport.write(b"".join(parts))
        self._complete()

    async def _write(self, data: bytes) -> None:
        assert self.transport is not None
        if self.closed:
            return  # cancellation is already on its way to this task
        self.transport.write(data)
        if self.paused and not self.closed:
            self.drain = asyncio.get_running_loop().create_future()
            await self.drain
            self.drain = None

    async def _engine_paced(self, reply: Reply, knobs: Knobs, t0: int, parts: list[str]) -> None:
        """Wait for one of the engine's sequences, then reply with its time to first token added."""
        gate = self.app.gate
        assert gate is not None
        request = self.app.next_id()
        try:
            started = await gate.enter(request, parts, reply.n)
            await self._paced(reply, dataclasses.replace(knobs, ttft_ms=knobs.ttft_ms + started.ttft_s * 1000), t0)
        except asyncio.CancelledError:
            return  # connection_lost already did the accounting
        finally:
            gate.leave(request)

    async def _paced(self, reply: Reply, knobs: Knobs, t0: int) -> None:
        ttft, itl = knobs.ttft_ms / 1000, knobs.itl_ms / 1000
        drop = knobs.drop_after
        try:
            if not reply.stream:
                delay = ttft + itl * max(0, reply.n - 1)
                if delay > 0:
                    await asyncio.sleep(delay)
                if drop is not None:
                    self._drop(abort=True)
                    return
                self._send(200, reply.content_type, reply.full(time.perf_counter_ns() - t0))
            else:
                sr = cast(StreamReply, reply)
                await self._write(_head(200, sr.content_type, None, self.keep_alive))
                if ttft > 0:
                    await asyncio.sleep(ttft)
                prelude = sr.prelude()
                if prelude:
                    await self._write(_chunk(prelude))
                for i in range(sr.n):
                    if i == drop:
                        self._drop(abort=False)
                        return
                    if i and itl > 0:
                        await asyncio.sleep(itl)
                    await self._write(_chunk(sr.event(i)))
                if drop == sr.n:
                    self._drop(abort=False)
                    return
                await self._write(_chunk(sr.tail(time.perf_counter_ns() - t0)) + _LAST_CHUNK)
                self._complete()
        except asyncio.CancelledError:
            return  # connection_lost already did the accounting
        self.task = None
        self.busy = False
        self._pump()


# ----------------------------------------------------------------------------- public API
class Simulator:
    """A running simulator; `async with await start_simulator(...)` or call `close()`."""

    def __init__(self, app: App, server: asyncio.Server, host: str) -> None:
        self._app = app
        self._server = server
        self.host = host
        self.port: int = server.sockets[0].getsockname()[1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.port}"

    @property
    def settings(self) -> SimulatorSettings:
        return self._app.settings

    @property
    def stats(self) -> dict[str, Any]:
        return self._app.stats.as_dict()

    @property
    def knobs(self) -> Knobs:
        return self._app.knobs

    def set_knobs(self, **overrides: object) -> Knobs:
        """In-process twin of POST /_sim/knobs."""
        self._app.knobs = merge(self._app.knobs, overrides)
        return self._app.knobs

    def reset_stats(self) -> None:
        self._app.stats.reset()

    async def close(self) -> None:
        app = self._app
        app.closing = True
        self._server.close()
        # Hanging and streaming connections would otherwise keep wait_closed() waiting.
        for conn in list(app.conns):
            if conn.transport is not None:
                conn.transport.abort()
        await self._server.wait_closed()

    async def __aenter__(self) -> Simulator:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def start_simulator(settings: SimulatorSettings, host: str = "127.0.0.1",
                          port: int = 0) -> Simulator:
    app = App(settings)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Conn(app), host, port, backlog=2048,
                                      reuse_address=True)
    return Simulator(app, server, host)


def run(settings: SimulatorSettings, host: str = "127.0.0.1", port: int = 0) -> None:
    """Serve until SIGINT or SIGTERM, then close cleanly."""
    import uvloop

    async def serve() -> None:
        sim = await start_simulator(settings, host, port)
        print(f"simulator {settings.flavor} listening on {sim.url}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await stop.wait()
        finally:
            await sim.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(serve())
