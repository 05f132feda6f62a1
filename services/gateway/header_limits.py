"""Header limits, enforced while the headers arrive.

httptools (under uvicorn) puts no bound on the request line and headers: a client could stream
headers until memory runs out, and an ASGI middleware sees them only once they are all in. This
protocol counts bytes and headers in the parser's callbacks and answers 431, in OpenAI's error
shape, as soon as either limit is passed, then closes the connection.

Nor does uvicorn bound their time: its keep-alive timer stops at a request's first byte and
does not run on a new connection at all, so a client that connects and sends nothing, or half a
request line, holds the connection for ever. Here the headers must be complete within
`header_timeout_s` of the connection or of the request's first byte, else 408 and close.

Why a subclass of uvicorn's private `HttpToolsProtocol`: uvicorn's public seam (`http=`, any
protocol class) sees bytes, not the parser's callbacks, and no uvicorn setting bounds headers
under httptools (h11's `h11_max_incomplete_event_size` would mean the slower parser, and still
no time bound). tests/unit/test_header_limits.py pins each thing this relies on, so a uvicorn
upgrade that moves one fails there by name.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.errors import HeadersTooLarge, RequestTimeout, error_json


class _Exceeded(Exception):
    pass


def _closing_response(status_line: bytes, body: bytes) -> bytes:
    return (b"HTTP/1.1 " + status_line + b"\r\ncontent-type: application/json\r\ncontent-length: "
            + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, counting the request line and headers as the parser reports them.

    The limits and the two canned answers are class attributes, set by `limited_protocol`.
    """

    max_header_bytes: ClassVar[int]
    max_headers: ClassVar[int]
    header_timeout_s: ClassVar[float]
    too_large: ClassVar[bytes]  # the 431, written as is
    too_slow: ClassVar[bytes]  # the 408, written as is

    _header_bytes = 0  # counted in the parser's callbacks
    _header_count = 0
    # httptools buffers a header until it is complete, so one endless header never reaches
    # `on_header`: whole reads that end still inside the headers are counted as well. A read
    # in which a message's headers or the message itself completed is not counted (its bytes
    # may be body), so this undercounts by at most one read.
    _unparsed = 0
    _in_headers = True
    _boundary = False  # headers or a message completed during the current read
    _exceeded = False
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def data_received(self, data: bytes) -> None:
        self._boundary = False
        if self._in_headers and self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)
        super().data_received(data)
        if self._in_headers and not self._boundary and not self._exceeded and not self.transport.is_closing():
            self._unparsed += len(data)
            if self._unparsed > self.max_header_bytes:
                self._exceeded = True
                self.send_400_response("")

    def on_message_begin(self) -> None:
        self._header_bytes = self._header_count = 0
        super().on_message_begin()

    def on_headers_complete(self) -> None:
        self._in_headers, self._unparsed, self._boundary = False, 0, True
        self._stop_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request began while an answer still streams: judge it after that.
            self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)
            return
        if self._in_headers and not self.transport.is_closing():
            self.transport.write(self.too_slow)
            self.transport.close()

    def on_message_complete(self) -> None:
        self._in_headers, self._unparsed, self._boundary = True, 0, True
        super().on_message_complete()

    def _count(self, size: int, headers: int = 0) -> None:
        self._header_bytes += size
        self._header_count += headers
        if self._header_bytes > self.max_header_bytes or self._header_count > self.max_headers:
            self._exceeded = True
            raise _Exceeded  # httptools stops parsing and the base class answers, via send_400_response

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4, 1)
        super().on_header(name, value)

    def send_400_response(self, msg: str) -> None:
        if not self._exceeded:
            super().send_400_response(msg)
            return
        self.transport.write(self.too_large)
        self.transport.close()


def limited_protocol(max_header_bytes: int, max_headers: int, header_timeout_s: float = 10.0
                     ) -> type[LimitedHttpToolsProtocol]:
    """The protocol class to give uvicorn (`http=`), with these limits."""
    too_large = _closing_response(b"431 Request Header Fields Too Large", error_json(HeadersTooLarge(
        f"the request line and headers exceed {max_header_bytes} bytes or {max_headers} headers").body()))
    too_slow = _closing_response(b"408 Request Timeout", error_json(RequestTimeout(
        f"the request line and headers did not arrive within {header_timeout_s:g} s").body()))
    return type("LimitedHttpToolsProtocol", (LimitedHttpToolsProtocol,), {
        "max_header_bytes": max_header_bytes, "max_headers": max_headers, "header_timeout_s": header_timeout_s,
        "too_large": too_large, "too_slow": too_slow})
