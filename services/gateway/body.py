"""Reading a request body with a size limit that holds before the body is all read."""

from __future__ import annotations

import asyncio

from fastapi import Request

from shared.errors import BadRequest, PayloadTooLarge, RequestTimeout, UnsupportedEncoding


async def read_body(request: Request, limit: int, idle_timeout_s: float) -> bytes:
    """`idle_timeout_s` bounds each wait for more of the body, not the whole upload: a large body
    on a slow link is fine, a stalled one is a 408."""
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":  # read as JSON it would be "malformed at byte 0", which misleads
        raise UnsupportedEncoding(f"the request body is sent with Content-Encoding {encoding!r}; aiub reads "
                                  "request bodies uncompressed: send it without Content-Encoding")
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise BadRequest("Content-Length is not a number") from None
        if size > limit:
            raise PayloadTooLarge(f"the request body is {size} bytes; the limit is {limit}")
    parts: list[bytes] = []
    received = 0
    stream = request.stream()
    while True:
        try:
            async with asyncio.timeout(idle_timeout_s):
                part = await anext(stream, None)
        except TimeoutError:
            raise RequestTimeout(f"the request body stopped arriving for {idle_timeout_s:g} s") from None
        if part is None:
            break
        received += len(part)
        if received > limit:  # chunked uploads announce no length: count as they arrive
            raise PayloadTooLarge(f"the request body exceeds the limit of {limit} bytes")
        parts.append(part)
    if not received:
        raise BadRequest("the request body is empty")
    return parts[0] if len(parts) == 1 else b"".join(parts)
