"""The client library's deadlines, cancels and retries, against a real NATS server.

A scripted router-and-worker on the bus plays each failure exactly; everything else is real.
"""

from __future__ import annotations

import asyncio
import time
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
    client = await InferenceClient.start(nc, FAST)
    started = time.monotonic()
    frames = await collect(client)
    assert time.monotonic() - started < 0.45  # accepted_s is 0.5: it did not wait for it
    assert isinstance(frames[-1], Error) and frames[-1].status == 503


async def test_a_timer_that_fires_before_the_deadline_is_not_an_error(nc: Client,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """uvloop rounds timers to milliseconds and may wake a little before `time.monotonic()` says
    the deadline passed: here every timeout of the client library wakes 2 ms early."""
    async def silent(nc: Client, request: InferenceRequest, reply: str) -> None:
        return None

    await play(nc, silent)
    on_time = asyncio.timeout
    monkeypatch.setattr("shared.client.asyncio.timeout", lambda delay: on_time(max(0.0, delay - 0.002)))
    frames = await collect(await InferenceClient.start(nc, FAST))
    assert isinstance(frames[-1], Error) and frames[-1].status == 504, frames


async def test_nobody_accepting_in_time_is_504(nc: Client) -> None:
    async def silent(nc: Client, request: InferenceRequest, reply: str) -> None:
        return None

    await play(nc, silent)
    client = await InferenceClient.start(nc, FAST)
    started = time.monotonic()
    frames = await collect(client)
    assert isinstance(frames[-1], Error) and frames[-1].status == 504
    assert 0.45 < time.monotonic() - started < 1.5


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
    await cancels.arrived(timeout_s=1)  # delivered to our own subscription: not instant
    assert cancels.reasons == ["deadline"]
    assert cancels.received[0].stalled  # the provider's failure, unlike the request's own deadline


async def test_heartbeats_keep_a_slow_first_token_alive(nc: Client) -> None:
    async def thinks(nc: Client, request: InferenceRequest, reply: str) -> None:
        await nc.publish(reply, accepted(request))
        for seq in range(1, 4):
            await asyncio.sleep(0.3)
            await nc.publish(reply, encode(Heartbeat(attempt=request.attempt, seq=seq)))
        await nc.publish(reply, chunk(request, 4, "late"))
        await nc.publish(reply, encode(Done(attempt=request.attempt, seq=5)))

    await play(nc, thinks)
    frames = await collect(await InferenceClient.start(nc, FAST))
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


async def test_a_worker_that_accepts_after_we_gave_up_is_cancelled(nc: Client) -> None:
    cancels = await CancelLog.on(nc, "ctl.late")

    async def slow_to_accept(nc: Client, request: InferenceRequest, reply: str) -> None:
        await asyncio.sleep(FAST.accepted_s + 0.2)
        await nc.publish(reply, accepted(request, control="ctl.late"))

    await play(nc, slow_to_accept)
    frames = await collect(await InferenceClient.start(nc, FAST))
    assert isinstance(frames[-1], Error) and frames[-1].status == 504
    await cancels.arrived(timeout_s=2)
    assert cancels.reasons == ["deadline"]
