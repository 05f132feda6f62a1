"""What `header_limits` relies on in uvicorn's private `HttpToolsProtocol`, pinned.

uvicorn's public seam is `http=`: it takes any protocol class. It has no setting that bounds the
request line and headers under httptools (`h11_max_incomplete_event_size` is h11's, and h11 is
the slower parser), and none that bounds their time. So the gateway subclasses the httptools
protocol and counts in its parser callbacks. These tests drive the real class through a fake
transport; a uvicorn upgrade that moves any of it fails here, by name:

- the reasons: uvicorn still sets no bound on headers, nor any timer on a new connection
  (should either change, the public setting may replace the subclass);
- the hooks overridden exist on `HttpToolsProtocol` itself, with the same signatures;
- an exception raised in a parser callback reaches `send_400_response` (how the 431 is sent);
- the attributes read (`loop`, `transport`, `cycle`) are what they were.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from services.gateway.header_limits import LimitedHttpToolsProtocol, limited_protocol

# Every uvicorn.Config parameter that could bound a request's size or time, as of uvicorn 0.54.
KNOWN_LIMIT_SETTINGS = {
    "ws_max_size", "ws_max_queue", "ws_ping_timeout", "proxy_headers", "server_header", "date_header",
    "limit_concurrency", "limit_max_requests", "limit_max_requests_jitter", "timeout_keep_alive",
    "timeout_notify", "timeout_graceful_shutdown", "timeout_worker_healthcheck", "headers",
    "h11_max_incomplete_event_size",
}
OVERRIDDEN = ("connection_made", "data_received", "connection_lost", "on_message_begin", "on_url", "on_header",
              "on_headers_complete", "on_message_complete", "send_400_response")


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: Any, receive: Any, send: Any) -> None:
    pass


def _connect(protocol_class: type[HttpToolsProtocol]) -> tuple[HttpToolsProtocol, FakeTransport]:
    """The protocol as uvicorn builds it, on a fresh connection."""
    config = uvicorn.Config(_app, lifespan="off", log_level="warning")
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={},
                              _loop=asyncio.get_running_loop())
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


def test_uvicorn_still_has_no_setting_that_bounds_headers_under_httptools() -> None:
    settings = {name for name in inspect.signature(uvicorn.Config).parameters
                if any(word in name for word in ("header", "limit", "timeout", "max", "size"))}
    assert settings == KNOWN_LIMIT_SETTINGS, (
        "uvicorn's limit settings changed: if one now bounds the request line and headers (size or time) "
        "under httptools, use it and drop header_limits.LimitedHttpToolsProtocol")


async def test_plain_httptools_takes_any_amount_of_header_and_arms_no_timer_on_connect() -> None:
    protocol, transport = _connect(HttpToolsProtocol)
    assert protocol.timeout_keep_alive_task is None  # a silent new connection is held for ever
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n")
    for n in range(2000):
        protocol.data_received(b"x-filler-%d: %s\r\n" % (n, b"a" * 100))
    protocol.data_received(b"x-endless: " + b"a" * 200_000)
    assert (transport.written, transport.closing) == (b"", False)
    assert protocol.timeout_keep_alive_task is None
    protocol.connection_lost(None)


@pytest.mark.parametrize("name", OVERRIDDEN)
def test_every_hook_overridden_is_the_base_classes_own_with_the_same_signature(name: str) -> None:
    assert name in vars(HttpToolsProtocol), f"uvicorn's HttpToolsProtocol no longer defines {name}"
    assert name in vars(LimitedHttpToolsProtocol)
    assert (inspect.signature(vars(HttpToolsProtocol)[name])
            == inspect.signature(vars(LimitedHttpToolsProtocol)[name])), name


async def test_too_many_headers_raise_in_a_callback_and_the_base_class_answers_431() -> None:
    protocol, transport = _connect(limited_protocol(max_header_bytes=10_000, max_headers=5))
    # httptools reports a header once the next one begins: the seventh line brings the sixth.
    protocol.data_received(b"GET / HTTP/1.1\r\n" + b"".join(b"x-h%d: v\r\n" % n for n in range(7)))
    assert transport.written.startswith(b"HTTP/1.1 431 ") and transport.closing
    assert b"content-type: application/json" in transport.written


async def test_one_endless_header_is_counted_by_reads_and_answered_431() -> None:
    protocol, transport = _connect(limited_protocol(max_header_bytes=1000, max_headers=100))
    protocol.data_received(b"GET / HTTP/1.1\r\nx-endless: ")
    for _ in range(3):
        protocol.data_received(b"a" * 400)
    assert transport.written.startswith(b"HTTP/1.1 431 ") and transport.closing


async def test_a_connection_gets_the_header_timer_on_its_loop_and_answers_408_when_it_runs_out() -> None:
    loop = asyncio.get_running_loop()
    protocol, transport = _connect(limited_protocol(max_header_bytes=1000, max_headers=100, header_timeout_s=7))
    assert protocol.loop is loop and protocol.transport is transport and protocol.cycle is None
    timer = protocol._header_timer
    assert timer is not None and 6.9 < timer.when() - loop.time() <= 7
    timer.cancel()
    protocol._headers_too_slow()
    assert transport.written.startswith(b"HTTP/1.1 408 ") and transport.closing
