"""Waiting for a request's first frame while its client may hang up.

Starlette notices a client that leaves during a streamed response, but not during a handler
that is still waiting: a non-streaming request (or a stream whose first token is slow) would
keep the backend generating for nobody. So the wait races the client's disconnect, and a client
that is gone cancels the call (the client library then sends `Cancel(client_gone)`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeVar

from starlette.requests import Request

T = TypeVar("T")

# Most answers come sooner: only a wait longer than this pays for watching the connection.
WATCH_AFTER_S = 0.25


class ClientGone(Exception):
    pass


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def first_or_gone(request: Request, frames: AsyncIterator[T]) -> T:
    """The first item of `frames`, or ClientGone as soon as the client disconnects."""
    first: asyncio.Future[T] = asyncio.ensure_future(anext(frames))
    gone: asyncio.Future[None] | None = None
    try:
        done, _ = await asyncio.wait((first,), timeout=WATCH_AFTER_S)
        if not done:
            gone = asyncio.ensure_future(_disconnected(request))
            await asyncio.wait((first, gone), return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:  # the handler itself is cancelled (shutdown): take the wait with it
        first.cancel()
        raise
    finally:
        if gone is not None:
            gone.cancel()
    if first.done():
        return first.result()
    first.cancel()
    await asyncio.wait((first,))  # let the call's own cleanup run; a cancel of ours still propagates
    raise ClientGone
