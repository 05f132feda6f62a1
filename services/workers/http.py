"""The worker's HTTP client for backends: aiohttp, pooled, with failures in three kinds.

DESIGN.md names httpx as the client API, with the aiohttp transport where the transport is the
bottleneck. Measured here (docs/benchmarks.md), the httpx layer on top of that transport still
cost about 250 µs of CPU per request (request building, cookie extraction, header encoding):
a fifth of the whole stack's CPU per request at concurrency 64. The hot path therefore speaks
aiohttp directly; httpx stays where a request is rare (probes, CLI).

Failures, as the worker needs to tell them apart:

    BackendHttpError
    ├── BackendUnreachable   nothing answered: refused, reset or unresolvable; retryable anywhere
    ├── BackendTimeout       connected, but the backend said nothing for `read_timeout_s`
    └── BackendBroken        the connection failed mid-response (reset, protocol error, cut body)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass

import aiohttp

CHUNK_BYTES = 64 * 1024


class BackendHttpError(Exception):
    pass


class BackendUnreachable(BackendHttpError):
    pass


class BackendTimeout(BackendHttpError):
    pass


class BackendBroken(BackendHttpError):
    pass


@dataclass
class BackendResponse:
    status: int
    headers: Mapping[str, str]
    _response: aiohttp.ClientResponse

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives (one yield per socket read, not per line)."""
        try:
            async for data in self._response.content.iter_any():
                yield data
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise BackendTimeout(type(e).__name__) from e
        except aiohttp.ClientError as e:
            raise BackendBroken(type(e).__name__) from e

    async def read(self, limit: int | None = None) -> bytes:
        try:
            if limit is None:
                return await self._response.read()
            return await self._response.content.read(limit)
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise BackendTimeout(type(e).__name__) from e
        except aiohttp.ClientError as e:
            raise BackendBroken(type(e).__name__) from e


class BackendHttp:
    """One pooled client per worker process; the session is made on first use, inside the loop."""

    def __init__(self, max_connections: int = 512, connect_timeout_s: float = 5.0) -> None:
        self._max_connections = max_connections
        self._connect_timeout_s = connect_timeout_s
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=60)
            # No cookie jar: backends have no business setting state in a shared client.
            self._session = aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar(),
                                                  trust_env=False, auto_decompress=True)
        return self._session

    @asynccontextmanager
    async def open(self, method: str, url: str, *, body: bytes | None, headers: Mapping[str, str],
                   read_timeout_s: float) -> AsyncIterator[BackendResponse]:
        """Send the request; leaving the block early closes the connection (it is not reused
        half-read), which is how a cancelled attempt stops the backend's generation."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self._connect_timeout_s, sock_read=read_timeout_s)
        try:
            response = await self._client().request(method, url, data=body, headers=headers, timeout=timeout,
                                                    allow_redirects=False)
        except (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError) as e:
            raise BackendUnreachable(type(e).__name__) from e
        except (TimeoutError, aiohttp.ServerTimeoutError) as e:
            raise BackendTimeout(type(e).__name__) from e
        except aiohttp.ClientError as e:
            raise BackendUnreachable(type(e).__name__) from e
        try:
            yield BackendResponse(response.status, response.headers, response)
        finally:
            if not response.closed and response.content.at_eof():
                response.release()
            else:
                response.close()

    async def fetch(self, method: str, url: str, *, headers: Mapping[str, str], timeout_s: float) -> tuple[int, bytes]:
        """A small whole request (model lists): status and body, within `timeout_s` overall."""
        try:
            async with asyncio.timeout(timeout_s):
                async with self.open(method, url, body=None, headers=headers, read_timeout_s=timeout_s) as response:
                    return response.status, await response.read()
        except TimeoutError as e:
            raise BackendTimeout("timed out") from e

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
