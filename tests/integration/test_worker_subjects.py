"""The subject a work order arrives on decides which provider serves it, never the order's own
`provider` field: an order that disagrees is refused with an OpenAI error, and nothing is charged.
And the worker's control subject answers a caller's question about one attempt."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client

from services.workers.http import BackendHttp
from services.workers.service import Worker
from shared import subjects
from shared.client import new_id
from shared.config import Config, ModelMappingsFile, ProviderSpec, RuntimeFile
from shared.messages import (
    ATTEMPT_HEADER,
    ATTEMPT_RUNNING,
    ATTEMPT_UNKNOWN,
    Accepted,
    Cancel,
    Error,
    InferenceRequest,
    encode,
    frame_decoder,
)

# Nothing listens there: a backend call would end in an error frame after an Accepted.
UNREACHABLE = "http://127.0.0.1:9"


@contextlib.asynccontextmanager
async def running_worker(nats_url: str, base_url: str, *providers: str) -> AsyncIterator[tuple[Client, Worker]]:
    """A worker serving `providers`, all one vLLM-typed backend at `base_url`, on its own connection."""
    nc = await nats.connect(nats_url)
    http = BackendHttp()
    spec = ProviderSpec.model_validate({"type": "vllm", "base_url": base_url, "max_concurrency": 1,
                                        "queue_size": 0, "models": ["m"]})
    config = Config(directory=Path("."), providers=dict.fromkeys(providers, spec), mappings=ModelMappingsFile(),
                    runtime=RuntimeFile())
    served = Worker(nc, config, list(providers), http)
    await served.start()
    try:
        yield nc, served
    finally:
        await served.stop(grace_s=0.0)
        await http.aclose()
        await nc.close()


@pytest_asyncio.fixture
async def worker(nats_url: str) -> AsyncIterator[tuple[Client, Worker, str, str]]:
    a, b = f"a{new_id()}", f"b{new_id()}"
    async with running_worker(nats_url, UNREACHABLE, a, b) as (nc, served):
        yield nc, served, a, b


async def send(nc: Client, subject_provider: str, order_provider: str) -> tuple[Accepted, Error]:
    """A work order naming `order_provider`, published on `subject_provider`'s subject."""
    attempt = new_id()
    inbox = subjects.inbox("subjects", attempt)
    sub = await nc.subscribe(inbox)
    request = InferenceRequest(id=new_id(), attempt=attempt, kind="chat", model="m",
                               body={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
    order = {"request": msgspec.to_builtins(request), "reply_inbox": inbox, "provider": order_provider,
             "backend_model": "m"}
    answer = frame_decoder.decode((await nc.request(subjects.work(subject_provider), encode(order),
                                                    timeout=2)).data)
    first = frame_decoder.decode((await sub.next_msg(timeout=2)).data)
    await sub.unsubscribe()
    assert isinstance(answer, Accepted), answer
    assert isinstance(first, Error), first
    return answer, first


@pytest.mark.parametrize("named", ["ghost", "other"])
async def test_an_order_for_another_provider_than_its_subject_is_refused(
        worker: tuple[Client, Worker, str, str], named: str) -> None:
    nc, served, a, b = worker
    accepted, error = await send(nc, a, b if named == "other" else "ghost")
    assert accepted.provider == a
    assert (error.status, error.retryable, error.provider) == (400, False, a)
    assert (error.error.type, error.error.code) == ("invalid_request_error", "provider_mismatch")
    assert a in error.error.message and (b if named == "other" else "ghost") in error.error.message
    assert all(slots.running == slots.queued == 0 for slots in served.slots.values())
    assert served.served == 0  # nothing was started, for either provider


async def test_the_control_subject_says_whether_the_worker_still_runs_an_attempt(nats_url: str) -> None:
    """The caller's liveness probe names its attempt: "running" while the worker serves it,
    "unknown" once it is over (so a caller still waiting knows its last frames were lost)."""
    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.read()  # a backend that takes the request and never answers, until the caller hangs up
        finally:
            writer.close()

    backend = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = backend.sockets[0].getsockname()[1]
    provider = f"p{new_id()}"
    async with backend, running_worker(nats_url, f"http://127.0.0.1:{port}", provider) as (nc, _):
        attempt = new_id()
        request = InferenceRequest(id=new_id(), attempt=attempt, kind="chat", model="m",
                                   body={"model": "m", "messages": [{"role": "user", "content": "hi"}]})
        order = {"request": msgspec.to_builtins(request), "reply_inbox": subjects.inbox("probe", attempt),
                 "provider": provider, "backend_model": "m"}
        accepted = frame_decoder.decode((await nc.request(subjects.work(provider), encode(order), timeout=2)).data)
        assert isinstance(accepted, Accepted)

        async def probe(about: str | None) -> bytes:
            headers = {ATTEMPT_HEADER: about} if about is not None else None
            return (await nc.request(accepted.control, b"", timeout=2, headers=headers)).data

        assert await probe(attempt) == ATTEMPT_RUNNING
        assert await probe("another-attempt") == ATTEMPT_UNKNOWN
        assert await probe(None) == b""  # a probe naming no attempt: being there is the answer
        await nc.publish(accepted.control, encode(Cancel(attempt=attempt, reason="client_gone")))

        async def over() -> bool:
            return await probe(attempt) == ATTEMPT_UNKNOWN
        deadline = asyncio.get_running_loop().time() + 10
        while not await over():
            assert asyncio.get_running_loop().time() < deadline, "the cancelled attempt still runs"
            await asyncio.sleep(0.02)
