"""The client library's wiring of deadlines, cancels and retries, against a real NATS server.

A scripted router-and-worker on the bus plays each failure exactly; everything else is real.
The decisions themselves (which deadline, at which instant, what an error means) are tested as
plain function calls in tests/unit/test_call_policy.py. Here no test measures wall time: where
the instant matters, the client runs on a `FakeClock` that only the test moves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import msgspec
import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from shared import subjects
from shared.client import InferenceClient
from shared.config import Deadlines
from shared.messages import (
    ATTEMPT_HEADER,
    ATTEMPT_UNKNOWN,
    WORKER_UNRESPONSIVE,
    Accepted,
    Cancel,
    Chunk,
    Done,
    Error,
    ErrorBody,
    Heartbeat,
    InferenceRequest,
    Result,
    cancel_decoder,
    encode,
    request_decoder,
)

FAST = Deadlines(accepted_s=0.5, first_token_s=1.0, idle_s=0.5, total_s=5.0, retry_budget=2)
Script = Callable[[Client, InferenceRequest, str], Awaitable[None]]
T0 = 1_000.0


class FakeClock:
    """The client's clock; it moves only when the test moves it. Counts its reads: the client
    reads it when it handles a frame or a timer wakes, so a test can tell the client has looked."""

    def __init__(self) -> None:
        self.now = T0
        self.reads = 0
        self._waiting: list[tuple[int, asyncio.Event]] = []

    def __call__(self) -> float:
        self.reads += 1
        for target, event in self._waiting:
            if self.reads >= target:
                event.set()
        return self.now

    def read_again(self, times: int = 1) -> Awaitable[None]:
        """Counting from now: until the client has read the clock `times` more times (a hang
        fails the test after 10 s)."""
        event = asyncio.Event()
        self._waiting.append((self.reads + times, event))
        return asyncio.wait_for(event.wait(), timeout=10)


async def silent(nc: Client, request: InferenceRequest, reply: str) -> None:
    return None


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    connection = await nats.connect(nats_url)
    yield connection
    await connection.drain()


async def play(nc: Client, script: Script) -> list[InferenceRequest]:
    """Answer every request on aiub.requests with `script`; returns the requests seen."""
    seen: list[InferenceRequest] = []
    running: set[asyncio.Task[None]] = set()

    async def on_request(msg: Msg) -> None:
        request = request_decoder.decode(msg.data)
        seen.append(request)
        task = asyncio.create_task(script(nc, request, msg.reply))
        running.add(task)
        task.add_done_callback(running.discard)

    await nc.subscribe(subjects.REQUESTS, cb=on_request)
    await nc.flush()
    return seen


class CancelLog:
    """The `Cancel`s a control subject receives, as a worker would see them."""

    def __init__(self) -> None:
        self.received: list[Cancel] = []
        self._event = asyncio.Event()

    @classmethod
    async def on(cls, nc: Client, subject: str) -> CancelLog:
        log = cls()

        async def record(msg: Msg) -> None:
            log.received.append(cancel_decoder.decode(msg.data))
            log._event.set()

        await nc.subscribe(subject, cb=record)
        return log

    @property
    def reasons(self) -> list[str]:
        return [c.reason for c in self.received]

    async def arrived(self, timeout_s: float) -> None:
        await asyncio.wait_for(self._event.wait(), timeout=timeout_s)


def accepted(request: InferenceRequest, provider: str = "p", control: str = "ctl.test") -> bytes:
    return encode(Accepted(attempt=request.attempt, seq=0, provider=provider, worker_id="w1", control=control))


def chunk(request: InferenceRequest, seq: int, text: str) -> bytes:
    return encode(Chunk(attempt=request.attempt, seq=seq, data=msgspec.Raw(msgspec.json.encode({"t": text}))))


async def collect(client: InferenceClient, stream: bool = True) -> list[object]:
    async with client.call(kind="chat", model="m", body={"messages": []}, stream=stream) as call:
        return [frame async for frame in call]


async def test_no_router_running_is_503_at_once(nc: Client) -> None:
    """On a clock that never moves no deadline can pass: the answer came without waiting for one."""
    client = await InferenceClient.start(nc, FAST, clock=FakeClock())
    frames = await asyncio.wait_for(collect(client), timeout=10)
    assert isinstance(frames[-1], Error) and frames[-1].status == 503
    assert frames[-1].error.code == "no_router"


async def test_a_request_larger_on_the_bus_than_nats_carries_is_413_not_an_exception(nc: Client) -> None:
    """Measured as encoded: numbers in exponent form grow when encoded again (1e5 becomes 100000.0),
    so a body that fitted as the client sent it may not fit the bus; nothing reaches a router."""
    seen = await play(nc, silent)
    client = await InferenceClient.start(nc, FAST, clock=FakeClock())
    numbers = [1e5] * (nc.max_payload // 4)  # 4 bytes each as '1e5,', 9 as '100000.0,'
    async with client.call(kind="chat", model="m", body={"messages": [], "n": numbers}, stream=False) as call:
        frames = [frame async for frame in call]
    assert len(frames) == 1 and isinstance(frames[0], Error), frames
    assert frames[0].status == 413 and frames[0].error.code == "payload_too_large"
    assert f"at most {nc.max_payload} bytes" in frames[0].error.message
    assert call.attempts[0].status == 413
    await nc.flush()
    assert seen == []


async def test_a_native_body_that_would_not_fit_beside_its_translation_is_left_behind(nc: Client) -> None:
    """Both bodies over one bus message, either alone under it: the request goes, translation only."""
    arrived = asyncio.Event()

    async def note(nc: Client, request: InferenceRequest, reply: str) -> None:
        arrived.set()

    seen = await play(nc, note)
    client = await InferenceClient.start(nc, FAST, clock=FakeClock())
    text = "x" * (nc.max_payload // 2)
    async with client.call(kind="chat", model="m", body={"messages": [{"role": "user", "content": text}]},
                           stream=False, native_body={"messages": [{"role": "user", "content": text}]},
                           native_dialect="anthropic") as call:
        reading = asyncio.create_task(anext(aiter(call)))
        waiting = asyncio.create_task(arrived.wait())
        await asyncio.wait({reading, waiting}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        reading.cancel()
        waiting.cancel()
    assert seen, reading.result()
    assert seen[0].native_body is None and seen[0].native_dialect is None
    assert seen[0].body["messages"][0]["content"] == text


async def test_nobody_accepting_in_time_is_504_at_the_accepted_deadline_of_the_clients_clock(nc: Client) -> None:
    """A timer that wakes before the clock says the deadline passed (uvloop rounds timers to
    milliseconds) decides nothing; the deadline on the client's clock ends the attempt."""
    published = asyncio.Event()

    async def silent_after_a_look(nc: Client, request: InferenceRequest, reply: str) -> None:
        published.set()  # the client started its timers before it could let this run

    seen = await play(nc, silent_after_a_look)
    clock = FakeClock()
    call = asyncio.create_task(collect(await InferenceClient.start(nc, FAST, clock=clock)))
    await asyncio.wait_for(published.wait(), timeout=10)
    clock.now = T0 + FAST.accepted_s - 0.002  # its timer wakes 2 ms early by the client's clock
    await clock.read_again(2)  # woke, looked, and waited again
    assert not call.done()
    clock.now = T0 + FAST.accepted_s
    frames = await asyncio.wait_for(call, timeout=10)
    assert isinstance(frames[-1], Error) and frames[-1].status == 504
    assert (frames[-1].error.code, frames[-1].error.message) == (
        "deadline_exceeded", "no worker accepted the request in time")
    assert not frames[-1].retryable and len(seen) == 1


async def test_silence_mid_stream_is_504_and_cancels_the_worker(nc: Client) -> None:
    cancels = await CancelLog.on(nc, "ctl.test")

    async def stalls(nc: Client, request: InferenceRequest, reply: str) -> None:
        await nc.publish(reply, accepted(request))
        await nc.publish(reply, chunk(request, 1, "a"))

    await play(nc, stalls)
    client = await InferenceClient.start(nc, FAST)
    frames = await collect(client)
    assert isinstance(frames[0], Chunk)
    assert isinstance(frames[-1], Error) and frames[-1].status == 504 and not frames[-1].retryable
    assert frames[-1].error.message == "provider p went silent mid-response"
    await cancels.arrived(timeout_s=1)  # delivered to our own subscription: not instant
    assert cancels.reasons == ["deadline"]
    assert cancels.received[0].stalled  # the provider's failure, unlike the request's own deadline


async def test_heartbeats_keep_a_slow_first_token_alive(nc: Client) -> None:
    """The worker moves the client's clock 30 s per heartbeat once the client has handled the last
    frame: past idle_s since Accepted, short of first_token_s. Real timers here are tens of
    seconds long, so only the frames wake the client."""
    slow = Deadlines(accepted_s=20, first_token_s=100, idle_s=50, liveness_s=45, total_s=1000)
    clock = FakeClock()

    async def thinks(nc: Client, request: InferenceRequest, reply: str) -> None:
        handled = clock.read_again()
        await nc.publish(reply, accepted(request))
        await handled
        for seq in range(1, 4):
            clock.now += 30
            handled = clock.read_again()
            await nc.publish(reply, encode(Heartbeat(attempt=request.attempt, seq=seq)))
            await handled
        clock.now += 5  # 95 s after Accepted: 45 s since the last heartbeat
        await nc.publish(reply, chunk(request, 4, "late"))
        await nc.publish(reply, encode(Done(attempt=request.attempt, seq=5)))

    await play(nc, thinks)
    frames = await asyncio.wait_for(collect(await InferenceClient.start(nc, slow, clock=clock)), timeout=10)
    assert [type(f) for f in frames] == [Chunk, Done]


async def test_consumer_leaving_early_sends_client_gone(nc: Client) -> None:
    cancels = await CancelLog.on(nc, "ctl.test")

    async def endless(nc: Client, request: InferenceRequest, reply: str) -> None:
        await nc.publish(reply, accepted(request))
        for seq in range(1, 50):
            await nc.publish(reply, chunk(request, seq, "x"))
            await asyncio.sleep(0.01)

    await play(nc, endless)
    client = await InferenceClient.start(nc, FAST)
    async with client.call(kind="chat", model="m", body={}, stream=True) as call:
        async for _ in call:
            break
    await cancels.arrived(timeout_s=1)
    assert cancels.reasons == ["client_gone"]


@pytest.mark.parametrize("stream", [True, False])
async def test_a_consumer_stopping_at_the_last_frame_leaves_the_attempt_a_200_and_sends_no_cancel(
        nc: Client, stream: bool) -> None:
    """The gateway returns on `Done` (or a `Result`) without asking for another frame: the
    attempt it records must say 200, and the finished worker must not hear `client_gone`."""
    cancels = await CancelLog.on(nc, "ctl.test")

    async def answers(nc: Client, request: InferenceRequest, reply: str) -> None:
        await nc.publish(reply, accepted(request))
        if stream:
            await nc.publish(reply, chunk(request, 1, "hi"))
            await nc.publish(reply, encode(Done(attempt=request.attempt, seq=2)))
        else:
            await nc.publish(reply, encode(Result(attempt=request.attempt, seq=1, data=msgspec.Raw(b"{}"))))

    await play(nc, answers)
    client = await InferenceClient.start(nc, FAST)
    async with client.call(kind="chat", model="m", body={}, stream=stream) as call:
        async for frame in call:
            if isinstance(frame, Done | Result):
                break
    assert [(a.provider, a.status, a.ended is not None) for a in call.attempts] == [("p", 200, True)]
    await nc.flush()
    assert cancels.received == []


async def test_retryable_error_before_content_retries_elsewhere_and_drops_stale_frames(nc: Client) -> None:
    async def first_fails_then_talks(nc: Client, request: InferenceRequest, reply: str) -> None:
        if request.attempt_number == 1:
            await nc.publish(reply, accepted(request, provider="bad"))
            await nc.publish(reply, encode(Error(attempt=request.attempt, seq=1, status=502, retryable=True,
                                                 provider="bad", error=ErrorBody(message="x", type="upstream_error"))))
            await asyncio.sleep(0.05)
            # A late frame from the failed attempt: it must never reach the consumer.
            await nc.publish(reply, chunk(request, 2, "STALE"))
            return
        await asyncio.sleep(0.1)
        await nc.publish(reply, accepted(request, provider="good"))
        await nc.publish(reply, encode(Result(attempt=request.attempt, seq=1, data=msgspec.Raw(b'{"ok":true}'))))

    seen = await play(nc, first_fails_then_talks)
    client = await InferenceClient.start(nc, FAST)
    frames = await collect(client, stream=False)
    assert len(frames) == 1 and isinstance(frames[0], Result)
    assert bytes(frames[0].data) == b'{"ok":true}'
    assert [r.excluded for r in seen] == [(), ("bad",)]
    assert len({r.attempt for r in seen}) == 2


def _fails_first(status: int, then: Script) -> Script:
    async def script(nc: Client, request: InferenceRequest, reply: str) -> None:
        if request.attempt_number == 1:
            await nc.publish(reply, accepted(request, provider="bad"))
            await nc.publish(reply, encode(Error(attempt=request.attempt, seq=1, status=status, retryable=True,
                                                 provider="bad", error=ErrorBody(message="busy", type="x"))))
            return
        await then(nc, request, reply)
    return script


async def test_with_nothing_left_to_try_the_caller_gets_the_providers_error(nc: Client) -> None:
    async def router_refuses(nc: Client, request: InferenceRequest, reply: str) -> None:
        await nc.publish(reply, encode(Error(attempt=request.attempt, seq=0, status=503, error=ErrorBody(
            message="bad (already tried)", type="service_unavailable", code="no_provider_available"))))

    await play(nc, _fails_first(429, router_refuses))
    frames = await collect(await InferenceClient.start(nc, FAST))
    assert isinstance(frames[-1], Error) and (frames[-1].status, frames[-1].provider) == (429, "bad")


async def test_a_failure_of_the_retry_itself_is_not_replaced_by_the_earlier_error(nc: Client) -> None:
    async def nobody_accepts(nc: Client, request: InferenceRequest, reply: str) -> None:
        return None

    await play(nc, _fails_first(500, nobody_accepts))
    frames = await collect(await InferenceClient.start(nc, FAST))
    assert isinstance(frames[-1], Error) and frames[-1].status == 504  # not the first attempt's 500


async def test_a_worker_that_dies_keeps_its_provider_once_not_twice(nc: Client) -> None:
    async def dies_twice(nc: Client, request: InferenceRequest, reply: str) -> None:
        if request.attempt_number <= 2:
            await nc.publish(reply, encode(Error(attempt=request.attempt, seq=-1, status=503, retryable=True,
                                                 provider="p", error=ErrorBody(message="hung", type="x",
                                                                               code=WORKER_UNRESPONSIVE))))
            return
        await nc.publish(reply, accepted(request))
        await nc.publish(reply, encode(Result(attempt=request.attempt, seq=1, data=msgspec.Raw(b'{"ok":true}'))))

    seen = await play(nc, dies_twice)
    frames = await collect(await InferenceClient.start(nc, FAST), stream=False)
    assert isinstance(frames[-1], Result)
    assert [r.excluded for r in seen] == [(), (), ("p",)]  # its other workers first, then not the request


async def test_non_retryable_error_is_final(nc: Client) -> None:
    async def refuses(nc: Client, request: InferenceRequest, reply: str) -> None:
        await nc.publish(reply, accepted(request))
        await nc.publish(reply, encode(Error(attempt=request.attempt, seq=1, status=400, provider="p",
                                             error=ErrorBody(message="bad", type="invalid_request_error"))))

    seen = await play(nc, refuses)
    frames = await collect(await InferenceClient.start(nc, FAST))
    assert isinstance(frames[-1], Error) and frames[-1].status == 400
    assert len(seen) == 1


async def test_a_lost_frame_is_an_error_not_silent_corruption(nc: Client) -> None:
    async def skips(nc: Client, request: InferenceRequest, reply: str) -> None:
        await nc.publish(reply, accepted(request))
        await nc.publish(reply, chunk(request, 1, "a"))
        await nc.publish(reply, chunk(request, 3, "c"))

    await play(nc, skips)
    frames = await collect(await InferenceClient.start(nc, FAST))
    assert isinstance(frames[0], Chunk)
    assert isinstance(frames[-1], Error) and frames[-1].error.code == "frames_lost"


async def test_a_gap_before_any_content_is_retried_on_the_same_provider(nc: Client) -> None:
    async def loses_the_first_answers_start(nc: Client, request: InferenceRequest, reply: str) -> None:
        await nc.publish(reply, accepted(request))
        seq = 2 if request.attempt_number == 1 else 1  # frame 1 of the first attempt never arrives
        await nc.publish(reply, encode(Result(attempt=request.attempt, seq=seq, data=msgspec.Raw(b'{"ok":true}'))))

    seen = await play(nc, loses_the_first_answers_start)
    frames = await collect(await InferenceClient.start(nc, FAST), stream=False)
    assert isinstance(frames[-1], Result)  # the caller saw nothing of the first attempt: nothing to undo
    assert [r.excluded for r in seen] == [(), ()]  # the bus lost the frames, not the provider's fault


async def test_a_worker_that_finished_while_its_last_frames_were_lost_is_retried_at_once(nc: Client) -> None:
    """A bus restart can swallow an attempt's final frames: the worker is done and sends nothing
    more. Asked on its control subject, it says it no longer runs the attempt, and the caller
    retries instead of waiting out `idle_s` (here far longer than the test's own timeout)."""
    patient = Deadlines(accepted_s=2, first_token_s=60, idle_s=60, liveness_s=0.2, total_s=120, retry_budget=2)
    asked: list[str | None] = []

    async def answer_probe(msg: Msg) -> None:
        if msg.reply:  # a Cancel, which the client sends after giving up on the attempt, has none
            asked.append(msg.headers.get(ATTEMPT_HEADER) if msg.headers else None)
            await msg.respond(ATTEMPT_UNKNOWN)

    await nc.subscribe("ctl.finished", cb=answer_probe)

    async def final_frame_lost_once(nc: Client, request: InferenceRequest, reply: str) -> None:
        await nc.publish(reply, accepted(request, control="ctl.finished"))
        if request.attempt_number > 1:
            await nc.publish(reply, encode(Result(attempt=request.attempt, seq=1, data=msgspec.Raw(b'{"ok":true}'))))

    seen = await play(nc, final_frame_lost_once)
    frames = await asyncio.wait_for(collect(await InferenceClient.start(nc, patient), stream=False), timeout=20)
    assert isinstance(frames[-1], Result)
    assert asked == [seen[0].attempt]  # the probe named its attempt; once told, the client asked no more
    assert [r.excluded for r in seen] == [(), ()]


async def test_a_worker_that_accepts_after_we_gave_up_is_cancelled(nc: Client) -> None:
    cancels = await CancelLog.on(nc, "ctl.late")
    gave_up = asyncio.Event()

    async def slow_to_accept(nc: Client, request: InferenceRequest, reply: str) -> None:
        await gave_up.wait()
        await nc.publish(reply, accepted(request, control="ctl.late"))

    await play(nc, slow_to_accept)
    frames = await collect(await InferenceClient.start(nc, FAST))
    gave_up.set()
    assert isinstance(frames[-1], Error) and frames[-1].status == 504
    assert frames[-1].error.message == "no worker accepted the request in time"
    await cancels.arrived(timeout_s=2)
    assert cancels.reasons == ["deadline"]
