"""The subject a work order arrives on decides which provider serves it, never the order's own
`provider` field: an order that disagrees is refused with an OpenAI error, and nothing is charged."""

from __future__ import annotations

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
from shared.messages import Accepted, Error, InferenceRequest, encode, frame_decoder

# Nothing listens there: a backend call would end in an error frame after an Accepted.
UNREACHABLE = "http://127.0.0.1:9"


@pytest_asyncio.fixture
async def worker(nats_url: str) -> AsyncIterator[tuple[Client, Worker, str, str]]:
    nc = await nats.connect(nats_url)
    http = BackendHttp()
    a, b = f"a{new_id()}", f"b{new_id()}"
    spec = ProviderSpec.model_validate({"type": "vllm", "base_url": UNREACHABLE, "max_concurrency": 1,
                                        "queue_size": 0, "models": ["m"]})
    config = Config(directory=Path("."), providers={a: spec, b: spec}, mappings=ModelMappingsFile(),
                    runtime=RuntimeFile())
    served = Worker(nc, config, [a, b], http)
    await served.start()
    try:
        yield nc, served, a, b
    finally:
        await served.stop(grace_s=0.0)
        await http.aclose()
        await nc.close()


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
