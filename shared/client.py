"""The client library: publish an inference request on NATS and iterate its frames.

The gateway is its first user; any Python program can stream completions over NATS with it.

    client = await InferenceClient.start(nc, deadlines)
    async with client.call(kind="chat", model="llama3.1:8b", body={...}, stream=True) as call:
        async for frame in call:          # Chunk*, then Done; or one Result; or one Error
            ...

This module is the shell: it waits on NATS and reads its clock (`clock`, default
`time.monotonic`); which deadline applies, when it passes and what an error means (retry,
exclude, give up) are decided in `shared.call_policy`, which does no I/O.

What it guarantees (DESIGN.md, "A request's life", step 4):
- One wildcard inbox subscription per process; frames are routed to calls by the last token.
- Deadlines per attempt: `Accepted` within `accepted_s`, the first content frame of a stream
  within `first_token_s` of the request (a non-streaming answer only within the whole
  request's deadline), then at most `idle_s` between frames (heartbeats count),
  and the whole call within `total_s` or the client's own timeout. A passed deadline ends
  the iteration with an `Error` frame (504) and cancels the attempt: never a hang.
- A dead worker is noticed in `liveness_s`, not `idle_s`: a live one sends a frame at least
  every heartbeat, so after `liveness_s` of silence the client asks NATS about the worker's
  control subject. A killed process's subscriptions leave with its connection, and the server
  answers `no responders` at once: the attempt ends with a 502, retried elsewhere when no
  content was sent yet. A worker that answers it no longer runs the attempt has sent its last
  frames, and the bus lost them (it restarted under them): a 502 `frames_lost`, retried like a
  dead worker's, after a short grace for frames already on their way. So is a gap in the
  frames' sequence. Any other answer, or none, proves nothing, and the wait goes on.
- Fallback: a retryable error before any content reached the consumer is retried with a new
  attempt id and the failed provider excluded, within `retry_budget`. Frames of an older
  attempt are dropped. After the first content frame, a failure is an `Error` frame.
- Context-window fallback: a backend's `context_length_exceeded` before any content is retried
  (same budget) with `context_fallback` + 1, and the router picks a larger-context model from
  `context_window_fallbacks`.
- When a retry finds nothing else to try (the router answers, no provider does), the caller gets
  the last provider's own error, not the router's 503.
- Hedging (shared/hedging.py decides): when the router offered a hedge for an attempt
  (`HedgeOffer`, only for models with `hedging` settings) and it has sent no content `after_s`
  after it started, a second attempt is published with that provider excluded, budget
  permitting. Both race on one queue; the first to send content (a chunk, a result or its
  first part) wins and the other gets `Cancel(client_gone)`, so the consumer only ever sees the
  winner's frames. A racer that fails before content drops out and the other runs on.
- Leaving the `async with` early (the consumer went away) sends `Cancel(client_gone)` to the
  worker serving the attempt (to both while they race).
- Workers ask the attempt's inbox now and then whether it is still wanted; this process answers
  for every attempt it knows, so a worker stops generating once its caller is gone, even when
  the caller died without a word.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Literal

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.nuid import NUID

from shared import call_policy as policy
from shared import hedging, spans, subjects, tracing
from shared.config import Deadlines
from shared.errors import PayloadTooLarge, ServiceUnavailable
from shared.messages import (
    ATTEMPT_HEADER,
    ATTEMPT_UNKNOWN,
    ATTEMPT_WANTED,
    WORKER_UNRESPONSIVE,
    Accepted,
    Busy,
    Cancel,
    CancelReason,
    Chunk,
    Done,
    Error,
    ErrorBody,
    Frame,
    Heartbeat,
    HedgeOffer,
    InferenceRequest,
    RequestKind,
    Result,
    ResultPart,
    encode,
    frame_decoder,
)
from shared.prefix import prefix_key

ContentFrame = Chunk | Result | Done | Error
WorkerAnswer = Literal["gone", "running", "forgot", "unclear"]

Clock = Callable[[], float]

_nuid = NUID()


def new_id() -> str:
    return _nuid.next().decode()


@dataclass
class AttemptInfo:
    attempt: str
    started: float  # on the client's clock
    provider: str | None = None
    worker_id: str | None = None
    control: str | None = None
    stalled: bool = False  # the provider missed a first-token or idle deadline (not the request's own)
    status: int = 0
    error: str | None = None
    ended: float | None = None
    span: spans.Span = spans.INVALID_SPAN  # `aiub.attempt`, a child of the caller's current span
    hedge: bool = False  # a hedge, started while an earlier attempt had sent no content


class _NoResponders(msgspec.Struct, frozen=True):
    """The server's answer when nothing subscribes to the subject we published to."""

    attempt: str = ""


class InferenceClient:
    def __init__(self, nc: Client, deadlines: Deadlines, process_inbox: str, scope: str | None = None,
                 clock: Clock = time.monotonic, tracer: spans.Tracer | None = None) -> None:
        """`clock`: monotonic seconds; every deadline is measured on it (tests pass a fake one).
        `tracer`: for the attempt spans (shared/spans.py); default, the global provider's."""
        self._nc = nc
        self.clock = clock
        self.tracer = tracer or spans.tracer("aiub.client")
        self.deadlines = deadlines
        self._process_inbox = process_inbox
        self._scope = scope
        self._queues: dict[str, asyncio.Queue[Frame | _NoResponders]] = {}
        self.dropped_frames = 0
        self.hedge_budgets: dict[str, hedging.Budget] = {}  # per HedgeOffer.group
        self.hedges_started = 0
        self.hedges_won = 0

    @classmethod
    async def start(cls, nc: Client, deadlines: Deadlines | None = None, scope: str | None = None,
                    clock: Clock = time.monotonic, tracer: spans.Tracer | None = None) -> InferenceClient:
        """`scope`: the signed key scope (`aiub keys bus-token`) a secured bus requires."""
        # Under the connection's own inbox prefix, which a secured server lets only this user read.
        client = cls(nc, deadlines or Deadlines(), nc.new_inbox(), scope, clock, tracer)
        await nc.subscribe(client._process_inbox + ".*", cb=client._on_message)
        return client

    async def _on_message(self, msg: Msg) -> None:
        queue = self._queues.get(subjects.last_token(msg.subject))
        if not msg.data and msg.reply:  # a worker asking whether this attempt is still wanted
            with contextlib.suppress(Exception):
                await msg.respond(ATTEMPT_WANTED if queue is not None else ATTEMPT_UNKNOWN)
            return
        if queue is None:
            self.dropped_frames += 1  # an attempt we gave up on: stale by design
            await self._cancel_late(msg.data)
            return
        if not msg.data and msg.headers and msg.headers.get("Status") == "503":
            queue.put_nowait(_NoResponders(attempt=subjects.last_token(msg.subject)))
            return
        try:
            queue.put_nowait(frame_decoder.decode(msg.data))
        except (msgspec.ValidationError, msgspec.DecodeError):
            self.dropped_frames += 1

    def call(self, *, kind: RequestKind, model: str, body: dict[str, Any], stream: bool,
             timeout_s: float | None = None, capability: str | None = None,
             request_id: str | None = None, client_request_id: str | None = None,
             scope: str | None = None, chunk_batches: bool = False, native_body: dict[str, Any] | None = None,
             native_dialect: str | None = None, session_id: str | None = None) -> Call:
        """`chunk_batches`: the consumer reads `Chunk.more` (see `Chunk.payloads`), so a worker may
        send a backlog of chunks as one frame; off, every frame holds one chunk in `data`.
        `session_id`: keeps a conversation on one provider of a prefix_affinity pool."""
        total = min(timeout_s, self.deadlines.total_s) if timeout_s else self.deadlines.total_s
        request = InferenceRequest(
            id=request_id or new_id(), attempt="", kind=kind, model=model, body=body, stream=stream,
            deadline=time.time() + total, capability=capability, client_request_id=client_request_id,
            scope=scope or self._scope, chunk_batches=chunk_batches, native_body=native_body,
            native_dialect=native_dialect, prefix_hash=prefix_key(body, session_id),
        )
        return Call(self, request, self.clock() + total)

    # The Call drives these; they are the only places that touch the connection.
    def _register(self, attempt: str,
                  queue: asyncio.Queue[Frame | _NoResponders] | None = None) -> asyncio.Queue[Frame | _NoResponders]:
        """`queue`: shared with the attempt this one races (a hedge)."""
        queue = queue if queue is not None else asyncio.Queue()
        self._queues[attempt] = queue
        return queue

    def _unregister(self, attempt: str) -> None:
        self._queues.pop(attempt, None)

    async def _publish(self, request: InferenceRequest, span: spans.Span = spans.INVALID_SPAN) -> None:
        inbox = subjects.inbox(self._process_inbox, request.attempt)
        data = encode(request)
        # Measured as encoded, not as the client sent it: numbers re-encode longer (1e5 is
        # 100000.0), a front door's body travels beside its translation, a stored conversation
        # is added to a Responses turn. NATS would refuse it with an exception nobody can relay.
        if len(data) > self._nc.max_payload and request.native_body is not None:
            # The native body only spares a backend of the same dialect a translation back, so
            # a large request goes without it rather than being refused.
            data = encode(msgspec.structs.replace(request, native_body=None, native_dialect=None))
        if len(data) > self._nc.max_payload:
            raise PayloadTooLarge(f"the request is {len(data)} bytes as it travels on the bus; the bus carries at "
                                  f"most {self._nc.max_payload} bytes in one message: send less")
        await self._nc.publish(subjects.REQUESTS, data, reply=inbox,
                               headers=spans.inject(tracing.headers(request), span))

    async def _cancel_late(self, data: bytes) -> None:
        """A worker that accepted an attempt after we gave up on it would generate for nobody."""
        if not data.startswith(b'{"type":"accepted"'):
            return
        try:
            frame = frame_decoder.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return
        if isinstance(frame, Accepted):
            await self._cancel(frame.control, frame.attempt, "deadline")

    async def _ask_worker(self, control: str, attempt: str, timeout_s: float) -> WorkerAnswer:
        """Whether the worker on `control` still runs `attempt`; "unclear" when the answer proves nothing."""
        try:
            reply = await self._nc.request(control, b"", timeout=timeout_s, headers={ATTEMPT_HEADER: attempt})
        except NoRespondersError:
            return "gone"
        except Exception:
            return "unclear"
        return "forgot" if reply.data == ATTEMPT_UNKNOWN else "running"

    async def _cancel(self, control: str, attempt: str, reason: CancelReason, stalled: bool = False) -> None:
        try:
            await self._nc.publish(control, encode(Cancel(attempt=attempt, reason=reason, stalled=stalled)))
        except Exception:
            pass


class Call:
    """One request's frames across its attempts. Use as `async with`; iterate once."""

    def __init__(self, client: InferenceClient, request: InferenceRequest, deadline: float) -> None:
        self._client = client
        self.request = request
        self._deadline = deadline
        self.attempts: list[AttemptInfo] = []
        self._live: list[AttemptInfo] = []  # attempts whose workers may still be generating (two while racing)
        self._current: AttemptInfo | None = None  # the attempt whose frames the consumer gets
        # What the next attempt carries; its retry budget is filled when the iteration starts.
        self._fallback = policy.Fallback(excluded=tuple(request.excluded), retries_left=0,
                                         context_fallback=request.context_fallback)
        self.first_content_at: float | None = None
        self.hedged_from: str | None = None  # the provider of the attempt a hedge raced, once one started
        self.hedge_won = False  # and it sent the content

    async def __aenter__(self) -> Call:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        live, self._live = self._live, []
        for info in live:
            try:
                if info.control:
                    # Still live here means the consumer stopped before the last frame.
                    await self._client._cancel(info.control, info.attempt, "client_gone")
            finally:
                self._client._unregister(info.attempt)
                spans.end_attempt(info, cancelled=True)

    @property
    def provider(self) -> str | None:
        return self._current.provider if self._current is not None else None

    def __aiter__(self) -> AsyncIterator[ContentFrame]:
        return self._frames()

    async def _begin(self, queue: asyncio.Queue[Frame | _NoResponders] | None = None,
                     hedge_from: str | None = None) -> tuple[AttemptInfo, asyncio.Queue[Frame | _NoResponders]]:
        """Publish a new attempt; `hedge_from`: a hedge, racing the attempt on that provider."""
        clock = self._client.clock
        info = AttemptInfo(attempt=new_id(), started=clock(), hedge=hedge_from is not None)
        self.attempts.append(info)
        info.span = spans.start_attempt(self._client.tracer, self.request, info.attempt, len(self.attempts))
        queue = self._client._register(info.attempt, queue)
        self._live.append(info)
        fallback = self._fallback
        excluded = fallback.excluded if hedge_from is None else (*fallback.excluded, hedge_from)
        await self._client._publish(msgspec.structs.replace(
            self.request, attempt=info.attempt, excluded=excluded, attempt_number=len(self.attempts),
            context_fallback=fallback.context_fallback, hedge=hedge_from is not None), info.span)
        if hedge_from is None:
            self._current = info
        else:
            # Whichever attempt ends up answering, a retry after it must not go back to the slow one.
            self._fallback = dataclasses.replace(fallback, excluded=excluded)
        return info, queue

    async def _frames(self) -> AsyncIterator[ContentFrame]:
        clock = self._client.clock
        self._fallback = dataclasses.replace(self._fallback, retries_left=self._client.deadlines.retry_budget)
        try:
            while True:
                try:
                    first, queue = await self._begin()
                except PayloadTooLarge as e:  # every attempt would be as large: nothing to retry
                    yield e.frame(self._not_sent(e).attempt, 0)
                    return
                final: Error | None = None
                async for frame in self._attempt_frames(first, queue):
                    if isinstance(frame, Error):
                        final = frame
                        break
                    if self.first_content_at is None:
                        self.first_content_at = clock()
                    if isinstance(frame, Done | Result):
                        # Settled before it is handed over: a consumer stops at the last frame
                        # (never resuming us), and its record must still say 200, and its worker,
                        # done already, must not be told the client went away.
                        assert self._current is not None
                        self._current.status = 200
                        self._finish(self._current)
                        yield frame
                        return
                    yield frame
                assert final is not None and self._current is not None
                info = self._current  # the attempt that ended: after a race, the one left running
                info.status, info.error = final.status, final.error.message
                self._fallback, decision = policy.after_error(self._fallback, final,
                                                              content=self.first_content_at is not None,
                                                              now=clock(), request_by=self._deadline)
                if info.control and policy.cancels_worker(final):
                    await self._client._cancel(info.control, info.attempt, "deadline", stalled=info.stalled)
                self._finish(info)
                if isinstance(decision, policy.GiveUp):
                    yield decision.error
                    return
        finally:
            if self._live:
                # Closed before its end outside `async with` (say, a response that was never
                # sent): the attempt must not stay registered, or its worker is told "still wanted".
                await self.__aexit__(None, None, None)

    def _not_sent(self, refusal: PayloadTooLarge) -> AttemptInfo:
        """End the attempt `_begin` registered but could not publish."""
        info = self.attempts[-1]
        info.status, info.error = refusal.status, refusal.message
        self._finish(info)
        return info

    def _finish(self, info: AttemptInfo) -> None:
        info.ended = self._client.clock()
        self._client._unregister(info.attempt)
        if info in self._live:
            self._live.remove(info)
        spans.end_attempt(info)

    async def _drop(self, racers: list[_Racer], loser: _Racer, error: Error | None) -> None:
        """End one of two racing attempts: it failed before content (`error`), or the other won."""
        info = loser.info
        racers.remove(loser)
        self._current = racers[0].info
        if error is None:
            info.error = "lost the race to a hedge" if not info.hedge else "lost the race to the attempt it hedged"
            if info.control:
                await self._client._cancel(info.control, info.attempt, "client_gone")
        else:
            info.status, info.error = error.status, error.error.message
            if info.control and policy.cancels_worker(error):
                await self._client._cancel(info.control, info.attempt, "deadline", stalled=info.stalled)
        self._finish(info)  # unregistered: a late Accepted of an attempt never placed is cancelled on arrival

    async def _attempt_frames(self, info: AttemptInfo,
                              queue: asyncio.Queue[Frame | _NoResponders]) -> AsyncIterator[ContentFrame]:
        """Frames of one attempt, in order, ending with Done, Result or Error (synthesised on a deadline);
        with a hedge, of whichever of the two racing attempts sends content first."""
        clock = self._client.clock
        racers = [_Racer(info, policy.start(self._client.deadlines, clock(), self._deadline))]
        offer: HedgeOffer | None = None  # for `info`, while it may still be hedged
        while True:
            content = self.first_content_at is not None
            if content or len(racers) > 1:
                offer = None
            wake = min(r.wake_at(content, self.request.stream) for r in racers)
            if offer is not None:
                wake = min(wake, hedging.due_at(info.started, offer.after_s))
            try:
                async with asyncio.timeout(max(0.0, wake - clock())):
                    frame = await queue.get()
            except TimeoutError:
                now = clock()
                if offer is not None and now >= hedging.due_at(info.started, offer.after_s):
                    offer = await self._hedge_if_due(info, offer, queue, racers, now)
                for due in list(racers):
                    error = await due.on_wake(self, content, now)
                    if error is None:
                        continue
                    if len(racers) > 1:
                        await self._drop(racers, due, error)
                        continue
                    yield error
                    return
                continue
            racer = next((r for r in racers if r.info.attempt == frame.attempt), None)
            if racer is None:
                continue  # queued for an attempt that dropped out of the race
            racer.timers = policy.frame_arrived(racer.timers, clock())
            if isinstance(frame, HedgeOffer):
                if racer.info is info and not info.hedge and not content and len(racers) == 1:
                    offer = frame
                    budgets = self._client.hedge_budgets
                    budgets[frame.group] = hedging.offered(budgets.get(frame.group), frame.max_fraction)
                continue
            out, ended = racer.reader.read(racer.info, frame)
            if len(racers) > 1:
                if isinstance(out, Error):
                    await self._drop(racers, racer, out)
                    continue
                if isinstance(frame, Chunk | Result | ResultPart | Done):
                    await self._drop(racers, next(r for r in racers if r is not racer), None)  # first content wins
                    if racer.info.hedge:
                        self.hedge_won = True
                        self._client.hedges_won += 1
            if out is not None:
                yield out
            if ended:
                return


    async def _hedge_if_due(self, info: AttemptInfo, offer: HedgeOffer, queue: asyncio.Queue[Frame | _NoResponders],
                            racers: list[_Racer], now: float) -> HedgeOffer | None:
        """Start a hedge for `info` if the budget allows (it joins `racers`); the offer still open, or None."""
        budgets = self._client.hedge_budgets
        budget = budgets.get(offer.group) or hedging.new_budget(offer.max_fraction)
        budgets[offer.group], decision = hedging.decide(
            started=info.started, after_s=offer.after_s, provider=offer.provider, now=now, budget=budget)
        if isinstance(decision, hedging.Hedge):
            self.hedged_from = decision.excluded
            self._client.hedges_started += 1
            try:
                hedge, _ = await self._begin(queue, hedge_from=decision.excluded)
            except PayloadTooLarge as e:  # the first attempt fitted, a few bytes fewer: it runs alone
                self._not_sent(e)
                return None
            racers.append(_Racer(hedge, policy.start(self._client.deadlines, self._client.clock(), self._deadline)))
            return None
        return None if isinstance(decision, hedging.Skip) else offer

class _Racer:
    """One attempt's deadlines and reader; two of them while a hedge races the first."""

    def __init__(self, info: AttemptInfo, timers: policy.Timers) -> None:
        self.info = info
        self.timers = timers
        self.reader = _Reader()

    def _stage(self, content: bool, stream: bool) -> policy.Stage:
        return policy.stage(accepted=self.info.worker_id is not None, content=content, stream=stream)

    def wake_at(self, content: bool, stream: bool) -> float:
        return policy.wake_at(self.timers, self._stage(content, stream), probing=bool(self.info.control))

    async def on_wake(self, call: Call, content: bool, now: float) -> Error | None:
        """What is due at `now`: None (wait on), or the error that ends this attempt."""
        info = self.info
        match policy.on_wake(self.timers, self._stage(content, call.request.stream), probing=bool(info.control),
                             now=now, attempt=info.attempt, provider=info.provider):
            case policy.Probe(timeout_s=timeout_s):
                assert info.control is not None
                answer = await call._client._ask_worker(info.control, info.attempt, timeout_s)
                if answer == "gone":
                    return policy.worker_gone_error(info.attempt, info.provider, content=content)
                probed = policy.forgotten if answer == "forgot" else policy.probed
                self.timers = probed(self.timers, call._client.clock())
            case policy.Expired(stalled=stalled, error=error):
                info.stalled = stalled
                return error
        return None


class _Reader:
    """One attempt's frames in sequence: `Accepted` names the worker, gaps are errors, parts join."""

    def __init__(self) -> None:
        self.expected_seq = 0
        self.parts: list[bytes] = []

    def read(self, info: AttemptInfo, frame: Frame | _NoResponders) -> tuple[ContentFrame | None, bool]:
        """(the frame for the consumer, if any; whether the attempt ended)."""
        match frame:
            case _NoResponders():
                return policy.own_error(ServiceUnavailable("no router is running: nothing consumes aiub.requests",
                                                           code="no_router"), info.attempt), True
            case Error(error=ErrorBody(code=code)) if code == WORKER_UNRESPONSIVE and info.worker_id:
                return None, False  # the router gave up on the worker just before its Accepted arrived
            case Error():
                return (frame if frame.provider or not info.provider
                        else msgspec.structs.replace(frame, provider=info.provider)), True
            case Accepted(provider=provider, worker_id=worker_id, control=control):
                info.provider, info.worker_id, info.control = provider, worker_id, control
                self.expected_seq = frame.seq + 1
                return None, False
            case Busy():
                return None, False
        if frame.seq != self.expected_seq:
            # Retryable before content (`after_error` checks that): a non-streaming caller saw nothing yet.
            return policy.frames_lost_error(info.attempt, info.provider, content=False,
                                            detail=f"expected frame {self.expected_seq}, got {frame.seq}"), True
        self.expected_seq += 1
        match frame:
            case Heartbeat():
                return None, False
            case ResultPart(data=data):
                self.parts.append(data)
                return None, False
            case Result() if self.parts:
                return msgspec.structs.replace(frame, data=msgspec.Raw(b"".join(self.parts))), True
            case Result() | Done():
                return frame, True
            case Chunk():
                return frame, False
        return None, False
