"""Header limits, enforced while the headers arrive.

httptools (under uvicorn) puts no bound on the request line and headers: a client could stream
headers until memory runs out, and an ASGI middleware sees them only once they are all in. This
protocol counts bytes and headers in the parser's callbacks and answers 431, in OpenAI's error
shape, as soon as either limit is passed, then closes the connection.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from shared.errors import HeadersTooLarge, error_json


class _Exceeded(Exception):
    pass


def limited_protocol(max_header_bytes: int, max_headers: int) -> type[HttpToolsProtocol]:
    body = error_json(HeadersTooLarge(
        f"the request line and headers exceed {max_header_bytes} bytes or {max_headers} headers").body())
    response = (b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\nconnection: close\r\n\r\n" + body)

    class LimitedHttpToolsProtocol(HttpToolsProtocol):
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

        def data_received(self, data: bytes) -> None:
            self._boundary = False
            super().data_received(data)
            if self._in_headers and not self._boundary and not self._exceeded and not self.transport.is_closing():
                self._unparsed += len(data)
                if self._unparsed > max_header_bytes:
                    self._exceeded = True
                    self.send_400_response("")

        def on_message_begin(self) -> None:
            self._header_bytes = self._header_count = 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            self._in_headers, self._unparsed, self._boundary = False, 0, True
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_headers, self._unparsed, self._boundary = True, 0, True
            super().on_message_complete()

        def _count(self, size: int, headers: int = 0) -> None:
            self._header_bytes += size
            self._header_count += headers
            if self._header_bytes > max_header_bytes or self._header_count > max_headers:
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
            self.transport.write(response)
            self.transport.close()

    return LimitedHttpToolsProtocol

