"""Health-service replicas: one leader, a SIGKILL hands the lease over, routing outlives them all.

Moved from tests/integration/test_health_service.py (assertions unchanged); its stack and
helpers are tests/support/health_stack.py's."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx
import pytest
from nats.aio.client import Client

from shared.health_view import HealthView
from tests.support.health_stack import ask, chats, sims, trip
from tests.support.processes import Stack

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def stack(health_stack: Stack) -> Stack:
    return health_stack


def _holder_pid(holder: str) -> int:
    return int(holder.split("-")[-2])


async def test_replicas_elect_one_leader_a_kill_hands_over_and_routing_outlives_them(
        stack: Stack, nc: Client, view: HealthView, http: httpx.AsyncClient) -> None:
    replicas = [stack.service("health") for _ in range(2)]
    leaders: list[str] = []

    async def record_leaders() -> None:
        while True:
            if view.heartbeat is not None and (not leaders or leaders[-1] != view.heartbeat.leader):
                leaders.append(view.heartbeat.leader)
            view.changed.clear()
            await view.changed.wait()

    recorder = asyncio.create_task(record_leaders())
    try:
        by_pid = {p.popen.pid: p for p in replicas}
        await view.wait_for(lambda v: v.heartbeat is not None and {"a", "b"} <= set(v.states), 20)
        await trip(http, stack, view, "a")
        tripped = view.states["a"]
        assert len(leaders) == 1 and _holder_pid(leaders[0]) in by_pid  # one writer all along

        first = leaders[0]
        by_pid[_holder_pid(first)].kill(signal.SIGKILL)
        killed_at = time.monotonic()
        await view.wait_for(lambda v: len(leaders) == 2, 10)
        handover_s = time.monotonic() - killed_at
        second = leaders[1]
        assert _holder_pid(second) in by_pid and _holder_pid(second) != _holder_pid(first)
        print(f"\nleader handover after SIGKILL: {handover_s:.2f} s")
        assert handover_s < 3 + 2  # the lease (3 s) and a couple of polls
        # The new leader resumed from the bucket: still open, same deadline.
        assert view.states["a"].state == "unavailable" and view.states["a"].open_until == tripped.open_until

        by_pid[_holder_pid(second)].kill(signal.SIGKILL)
        before = chats(sims(stack)["a"])
        results = [(await ask(http, stack))[:2] for _ in range(10)]
        assert results == [(200, "b")] * 10
        assert chats(sims(stack)["a"]) == before
        view.stale_after_s = 2.5  # the processes beat every 2 s
        await view.wait_for(lambda v: v.stale, 2.5 + 3)
        assert view.states["a"].state == "unavailable"  # kept, and reported stale
    finally:
        recorder.cancel()
        for proc in replicas:
            proc.stop()
