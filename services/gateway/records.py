"""Each request's record, after its last byte was sent: the log line and metrics (telemetry), and
its story published on the bus for the dashboard. Publishing is best effort: a bus that cannot
take it costs the record, never the response."""

from __future__ import annotations

import contextlib
import time

from services.gateway.state import GatewayState
from services.gateway.validation import ParsedRequest
from shared import subjects
from shared.client import Call
from shared.messages import AttemptRecord, RequestRecord, encode


async def record_hit(state: GatewayState, parsed: ParsedRequest, request_id: str,
                     client_request_id: str | None, started: float) -> None:
    """A request the cache answered."""
    latency = time.monotonic() - started
    state.telemetry.finished(kind=parsed.kind, model=parsed.model, provider=None, status=200, cache_hit=True,
                             latency_s=latency, ttft_s=None, attempts=0, completion_tokens=0)
    nc = state.nc
    if nc is None:
        return
    story = RequestRecord(request_id=request_id, client_request_id=client_request_id, model=parsed.model,
                           kind=parsed.kind, stream=parsed.stream, status=200, cache_hit=True, cache="hit",
                           latency_s=latency, ttft_s=None, at=time.time())
    with contextlib.suppress(Exception):
        await nc.publish(subjects.REQUEST_EVENTS, encode(story))


async def record(state: GatewayState, call: Call, started: float, status: int, completion_tokens: int = 0,
                 cache: str = "") -> None:
    """A request that went to the bus, with each attempt it took; `cache` is what `x-aiub-cache` told
    the client (miss, bypass), empty without a cache."""
    latency = time.monotonic() - started
    ttft = call.first_content_at - started if call.first_content_at else None
    state.telemetry.finished(kind=call.request.kind, model=call.request.model, provider=call.provider,
                             status=status, cache_hit=False, latency_s=latency, ttft_s=ttft,
                             attempts=len(call.attempts), completion_tokens=completion_tokens,
                             hedged_from=call.hedged_from, hedge_won=call.hedge_won)
    nc = state.nc
    if nc is None:
        return
    attempts = tuple(AttemptRecord(attempt=a.attempt, provider=a.provider, worker_id=a.worker_id, status=a.status,
                                   error=a.error, latency_s=((a.ended or time.monotonic()) - a.started))
                     for a in call.attempts)
    story = RequestRecord(request_id=call.request.id, client_request_id=call.request.client_request_id,
                           model=call.request.model, kind=call.request.kind, stream=call.request.stream,
                           status=status, cache_hit=False, cache=cache, latency_s=latency, ttft_s=ttft,
                           attempts=attempts, at=time.time())
    with contextlib.suppress(Exception):
        await nc.publish(subjects.REQUEST_EVENTS, encode(story))
