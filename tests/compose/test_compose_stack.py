"""compose.yaml, run: up and healthy, served through the published port, scaled, crashed,
NATS restarted, and torn down to nothing. The tests run in order on one stack (the `stack`
fixture); each leaves it healthy for the next, the last takes it down."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx
import nats
import openai
import pytest

from tests.compose.stack import Stack, project_leftovers

pytestmark = [pytest.mark.compose, pytest.mark.timeout(900)]

MODEL = "dolphin-mistral"  # served by vllm only (config/model-mappings.yaml): worker-vllm's replicas


def chat(stack: Stack, client: httpx.Client) -> httpx.Response:
    # A new prompt every time: the response cache must not answer for the workers.
    body = {"model": MODEL, "max_tokens": 8, "messages": [{"role": "user", "content": uuid.uuid4().hex}]}
    return client.post(f"{stack.url}/chat/completions", json=body, headers={"Authorization": f"Bearer {stack.key}"})


def served(stack: Stack, container: str) -> float:
    found = re.search(r'^provider_requests_total\{outcome="ok",provider="vllm"\} (\S+)$',
                      stack.metrics(container), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


@dataclass
class Load:
    results: list[tuple[float, bool]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def oks_since(self, moment: float) -> int:
        return sum(1 for at, ok in self.results if at > moment and ok)


@contextmanager
def load(stack: Stack, threads: int = 4) -> Iterator[Load]:
    """Requests without pause from a few clients for as long as the block runs."""
    state = Load()

    def client() -> None:
        with httpx.Client(timeout=10) as http:
            while not state.stop.is_set():
                try:
                    ok = chat(stack, http).status_code == 200
                except httpx.HTTPError:
                    ok = False
                    time.sleep(0.2)
                state.results.append((time.monotonic(), ok))

    workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
    for worker in workers:
        worker.start()
    try:
        yield state
    finally:
        state.stop.set()
        for worker in workers:
            worker.join(timeout=15)


def test_every_service_comes_up_healthy(stack: Stack) -> None:
    containers = stack.containers()
    assert len(containers) == 11, containers
    assert all(stack.inspect(name, ".State.Status") == "running" for name in containers)
    # Each aiub service runs as uid 10001 on a read-only root, as the Dockerfile and compose.yaml say.
    assert stack.inspect(stack.containers("gateway")[0], ".Config.User") == "10001:10001"
    assert stack.inspect(stack.containers("router")[0], ".HostConfig.ReadonlyRootfs") == "true"


def test_an_openai_chat_request_and_a_streaming_one_through_the_published_port(stack: Stack) -> None:
    client = openai.OpenAI(base_url=stack.url, api_key=stack.key, max_retries=0, timeout=30)
    answer = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hello"}])
    assert answer.choices[0].message.content and answer.choices[0].finish_reason == "stop"
    stream = client.chat.completions.create(model="llama3.1:8b", stream=True,
                                            messages=[{"role": "user", "content": "hello, streaming"}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(chunks) > 2 and text.strip()
    assert chunks[-1].choices[0].finish_reason == "stop"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=stack.url, api_key="wrong-key-0123456789", max_retries=0).models.list()


def test_a_worker_scaled_to_three_replicas_shares_the_work(stack: Stack) -> None:
    stack.compose("up", "-d", "--no-deps", "--scale", "worker-vllm=3", "worker-vllm")
    replicas = stack.containers("worker-vllm")
    assert len(replicas) == 3, replicas
    stack.wait_healthy(replicas)
    before = {name: served(stack, name) for name in replicas}
    sent = 0
    with httpx.Client(timeout=30) as http:
        # NATS hands each order to one member of the queue group at random: 30 leave a replica
        # idle once in ~70,000 runs; a replica still subscribing gets more rounds.
        while sent < 90:
            assert all(chat(stack, http).status_code == 200 for _ in range(30))
            sent += 30
            counts = {name: served(stack, name) - before[name] for name in replicas}
            if all(counts.values()):
                break
    assert all(counts.values()), counts
    assert sum(counts.values()) >= sent, counts


def test_a_crashed_gateway_and_worker_are_restarted_and_requests_resume(stack: Stack) -> None:
    gateway = stack.containers("gateway")[0]
    worker = stack.containers("worker-vllm")[0]
    with load(stack) as running:
        serving = time.monotonic() + 30  # the load is under way before anything is killed
        while running.oks_since(0) < 20 and time.monotonic() < serving:
            time.sleep(0.2)
        assert running.oks_since(0) > 0
        restarts = stack.crash(worker)
        stack.wait_restarted(worker, restarts)
        restarts = stack.crash(gateway)
        stack.wait_restarted(gateway, restarts)
        back = time.monotonic()
        give_up = back + 30
        while running.oks_since(back) < 20 and time.monotonic() < give_up:
            time.sleep(0.5)
    assert running.oks_since(back) >= 20, f"{running.oks_since(back)} requests served after the restarts"
    assert [int(stack.inspect(c, ".RestartCount")) for c in (gateway, worker)] == [1, 1]


async def _health_bucket(stack: Stack) -> tuple[object, set[str]]:
    password = stack.settings["NATS_MONITOR_PASSWORD"]
    nc = await nats.connect(f"nats://127.0.0.1:{stack.nats_port}", user="monitor", password=password,
                            inbox_prefix="_INBOX.monitor", connect_timeout=5, max_reconnect_attempts=0)
    try:
        js = nc.jetstream()
        info = await js.stream_info("KV_aiub_health")
        keys = set(await (await js.key_value("aiub_health")).keys())
        return info.created, keys
    finally:
        await nc.close()


def test_the_health_kv_survives_a_restart_of_the_nats_container(stack: Stack) -> None:
    created, keys = asyncio.run(_health_bucket(stack))
    assert keys, "the health service wrote nothing to aiub_health"
    (server,) = stack.containers("nats")
    stack.podman("restart", server)
    stack.wait_healthy([server])
    created_after, keys_after = asyncio.run(_health_bucket(stack))
    assert created_after == created, "the bucket was created anew: its stream was lost"
    assert keys <= keys_after
    with httpx.Client(timeout=10) as http:  # every service reconnects and serves again
        give_up = time.monotonic() + 60
        while chat(stack, http).status_code != 200:
            assert time.monotonic() < give_up, "no request served after the NATS restart"
            time.sleep(1)


def test_down_leaves_no_container_network_or_volume(stack: Stack) -> None:
    stack.compose("down", "-v", "--remove-orphans")
    assert project_leftovers(stack.env) == {"containers": [], "networks": [], "volumes": []}
