"""prefix_affinity end to end: real router, workers (one per provider, so one can be lost) and
gateway over three simulated backends. Requests that share a system prompt and first message land
on one provider; a session key pins a conversation whatever its prompt; losing the provider moves
its conversations to one other provider and leaves everyone else's where they were."""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest

from shared import subjects
from tests.support.processes import Process, Stack, wait_until

PROVIDERS = ("p1", "p2", "p3")
_asked = itertools.count()
WORKERS: dict[str, Process] = {}  # this module's stack's worker per provider, while it runs


@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("affinity")), nats_url)
    sims = {name: s.simulator("openai", ["aff"]) for name in PROVIDERS}
    s.write_config(providers={name: {"type": "vllm", "base_url": sim.url, "max_concurrency": 8, "models": ["aff"]}
                              for name, sim in sims.items()},
                   mappings={"load_balancing": {"aff": {"providers": list(PROVIDERS), "strategy": "prefix_affinity"}}},
                   runtime={"cache": {"enabled": False}})
    router = s.service("router")
    WORKERS.update({name: s.worker(name) for name in PROVIDERS})
    s.gateway()
    try:
        wait_until(lambda: "router_ready" in router.log() and all("worker_ready" in w.log() for w in WORKERS.values()),
                   30, "the router and the workers to be ready")
        s.wait_serving("aff")
        wait_for_load_reports(nats_url, PROVIDERS)
        yield s
    finally:
        s.stop()
        WORKERS.clear()


def wait_for_load_reports(nats_url: str, providers: tuple[str, ...], deadline_s: float = 10) -> None:
    """The router ranks a provider without a live load report after those with one: until every
    worker has reported once, a key's first choice can change as their reports arrive."""
    async def wait() -> None:
        seen: set[str] = set()
        every = asyncio.Event()

        async def on_load(msg: nats.aio.msg.Msg) -> None:
            seen.add(msg.subject.rsplit(".", 1)[1])
            if seen >= set(providers):
                every.set()

        nc = await nats.connect(nats_url)
        try:
            await nc.subscribe(subjects.LOAD_ALL, cb=on_load)
            await asyncio.wait_for(every.wait(), deadline_s)
        finally:
            await nc.close()

    asyncio.run(wait())


def conversation(system: str, turns: int) -> list[dict[str, str]]:
    """A conversation's messages after `turns` turns: what every turn resends is its head."""
    messages = [{"role": "system", "content": system}, {"role": "user", "content": "first question"}]
    for i in range(turns):
        messages += [{"role": "assistant", "content": f"answer {i}"}, {"role": "user", "content": f"follow-up {i}"}]
    return messages


def provider(stack: Stack, messages: list[dict[str, Any]], session: str | None = None) -> str:
    headers = {"x-session-id": session} if session else {}
    response = httpx.post(stack.gateway_url + "/v1/chat/completions", headers=headers, timeout=20, trust_env=False,
                          json={"model": "aff", "messages": messages})
    assert response.status_code == 200, response.text
    return response.headers["x-aiub-provider"]


def test_requests_sharing_a_system_prompt_land_on_one_provider(stack: Stack) -> None:
    for n in range(4):
        system = f"You are assistant number {n} of the affinity test."
        assert len({provider(stack, conversation(system, turns)) for turns in range(5)}) == 1
    spread = {provider(stack, conversation(f"Prompt {next(_asked)}", 0)) for _ in range(12)}
    assert len(spread) > 1  # different prefixes spread over the pool


def test_a_session_key_pins_a_conversation_whatever_its_prompt(stack: Stack) -> None:
    for session in ("alice", "bob", "carol"):
        assert len({provider(stack, conversation(f"Prompt {next(_asked)}", 1), session) for _ in range(5)}) == 1


def test_losing_the_provider_moves_only_its_conversations(stack: Stack) -> None:
    systems = [f"System prompt {i} for the loss test." for i in range(12)]
    before = {system: provider(stack, conversation(system, 0)) for system in systems}
    lost = before[systems[0]]
    WORKERS[lost].kill(signal.SIGKILL)
    try:
        after = {system: {provider(stack, conversation(system, turns)) for turns in range(3)} for system in systems}
        for system, was in before.items():
            (now,) = after[system]  # each conversation still on one provider
            if was == lost:
                assert now != lost
            else:
                assert now == was  # the others' keys did not move
    finally:
        WORKERS[lost] = stack.worker(lost)
        wait_until(lambda: "worker_ready" in WORKERS[lost].log(), 30, "the restarted worker")
