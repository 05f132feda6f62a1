"""`aiub up --scale router=2,worker.ollama=3`: replicas share their queue group and each takes a share.

The stack runs as `aiub up` does for a user (a subprocess, simulated backend via --demo) against
a NATS server of this test's own with monitoring on, so the server itself can say how many
requests each router's queue subscription received. Workers are told apart by the worker id
in each attempt's `Accepted` frame.
"""

from __future__ import annotations

import asyncio
import collections
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import yaml

from shared import subjects
from shared.client import InferenceClient
from shared.embedded_nats import free_port, server_binary, wait_for_port
from shared.messages import Result
from shared.processes import die_with_parent
from tests.support.processes import wait_until
from tests.support.up import AiubUp

REQUESTS = 300
CONCURRENCY = 30
PROVIDER = "ollama"


@dataclass
class Monitored:
    url: str
    monitor: str

    def queue_subscriptions(self, subject: str, queue: str) -> dict[int, int]:
        """Messages delivered per connection to its `queue` subscription on `subject`."""
        connections = httpx.get(f"{self.monitor}/connz?subs=detail&limit=1024", timeout=2,
                                trust_env=False).json()["connections"] or []
        return {c["cid"]: s["msgs"] for c in connections for s in c.get("subscriptions_list_detail") or []
                if s["subject"] == subject and s.get("qgroup") == queue}


@pytest.fixture(scope="module")
def monitored_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Monitored]:
    root = tmp_path_factory.mktemp("nats-monitored")
    port, monitor = free_port(), free_port()
    conf = root / "nats.conf"
    conf.write_text(f'listen: "127.0.0.1:{port}"\nhttp: "127.0.0.1:{monitor}"\n'
                    f'jetstream {{ store_dir: "{root / "js"}" }}\n')
    with (root / "server.log").open("ab") as log:
        process = subprocess.Popen([server_binary(), "-c", str(conf)], stdout=log, stderr=log,
                                   stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    try:
        wait_for_port("127.0.0.1", port, 15, process)
        wait_for_port("127.0.0.1", monitor, 15, process)
        yield Monitored(f"nats://127.0.0.1:{port}", f"http://127.0.0.1:{monitor}")
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def scaled_stack(tmp_path: Path, monitored_nats: Monitored) -> Iterator[Path]:
    config = tmp_path / "config"
    config.mkdir()
    (config / "providers.yaml").write_text(yaml.safe_dump({"providers": {PROVIDER: {
        "type": "ollama", "base_url": "http://127.0.0.1:9", "max_concurrency": 16, "models": ["scale-model"]}}}))
    (config / "model-mappings.yaml").write_text(yaml.safe_dump({"exact_matches": {
        "scale-model": {"provider": PROVIDER}}}))
    up = AiubUp(tmp_path, config, "--demo", "--nats", monitored_nats.url,
                "--scale", f"router=2,worker.{PROVIDER}=3")

    def subscribed() -> bool:
        return (len(monitored_nats.queue_subscriptions(subjects.REQUESTS, subjects.ROUTER_QUEUE)) == 2
                and len(monitored_nats.queue_subscriptions(subjects.work(PROVIDER),
                                                           subjects.worker_queue(PROVIDER))) == 3)

    try:
        up.wait_up(45)
        wait_until(subscribed, 45, "2 routers and 3 workers subscribed", interval_s=0.1)
        yield up.state_dir
    finally:
        up.stop()


async def _send_all(url: str) -> tuple[collections.Counter[str], list[Any]]:
    nc = await nats.connect(url)
    client = await InferenceClient.start(nc)
    served: collections.Counter[str] = collections.Counter()
    finals: list[Any] = []
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(i: int) -> None:
        async with gate:
            body = {"model": "scale-model", "messages": [{"role": "user", "content": f"hello {i}"}],
                    "max_tokens": 4}
            async with client.call(kind="chat", model="scale-model", body=body, stream=False, timeout_s=30) as call:
                frames = [frame async for frame in call]
                finals.append(frames[-1])
                if call.attempts and call.attempts[-1].worker_id:
                    served[call.attempts[-1].worker_id] += 1

    try:
        await asyncio.gather(*(one(i) for i in range(REQUESTS)))
    finally:
        await nc.close()
    return served, finals


@pytest.mark.timeout(90)
def test_every_router_and_worker_replica_serves_a_share(scaled_stack: Path, monitored_nats: Monitored) -> None:
    routed_before = sum(monitored_nats.queue_subscriptions(subjects.REQUESTS, subjects.ROUTER_QUEUE).values())
    served, finals = asyncio.run(_send_all(monitored_nats.url))

    assert len(finals) == REQUESTS
    assert all(isinstance(f, Result) for f in finals), [f for f in finals if not isinstance(f, Result)][:3]
    # Three replicas, each with its own id, split the work; an even split is ~100 each.
    assert len(served) == 3, served
    assert sum(served.values()) == REQUESTS
    assert min(served.values()) >= REQUESTS // 10, served

    routers = monitored_nats.queue_subscriptions(subjects.REQUESTS, subjects.ROUTER_QUEUE)
    assert len(routers) == 2
    assert sum(routers.values()) - routed_before == REQUESTS
    assert min(routers.values()) >= REQUESTS // 10, routers

    logs = {p.name for p in scaled_stack.glob("*.log")}
    assert {"router-1.log", "router-2.log", "worker-ollama-1.log", "worker-ollama-2.log",
            "worker-ollama-3.log", "health.log", "gateway.log"} <= logs
