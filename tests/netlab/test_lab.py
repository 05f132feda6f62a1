"""aiub across real network boundaries: three hub hosts, two GPU hosts, faults made by the network.

The GPU hosts' providers serve `lab-model` (either may) and `only-<gpu>` (that host, the other as
fallback). Each test leaves the lab as it found it (healed, every node back).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import ssl
import statistics
import time
from collections import Counter
from collections.abc import Callable

import httpx
import nats
import pytest
from nats.js.errors import NoKeysError

from shared import buckets, subjects
from shared import lab as lab_file
from tests.support.lab_stack import LabStack
from tests.support.netlab import NetemUnavailable
from tests.support.processes import wait_until

pytestmark = pytest.mark.timeout(240)


def _timed(call: Callable[[], str | None]) -> tuple[float, float, str | None]:
    started = time.monotonic()
    answer = call()
    return started, time.monotonic() - started, answer


def _load(lab: LabStack, hubs: list[str], model: str, seconds: float, threads: int = 6,
          during: Callable[[], None] | None = None, at_s: float = 2.0) -> list[tuple[float, float, str | None]]:
    """Requests from `threads` clients spread over `hubs` for `seconds`; `during` runs at `at_s`."""
    results: list[tuple[float, float, str | None]] = []
    stop_at = time.monotonic() + seconds

    def client(i: int) -> None:
        hub = hubs[i % len(hubs)]
        while time.monotonic() < stop_at:
            results.append(_timed(lambda: lab.answers(hub, model, timeout_s=30)))

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(client, i) for i in range(threads)]
        if during is not None:
            time.sleep(at_s)
            during()
        for f in futures:
            f.result()
    return results


def _kv_report(lab: LabStack, via_hub: str) -> tuple[int, set[str]]:
    """The health bucket's replica count and its keys, read through `via_hub`'s node."""
    async def read() -> tuple[int, set[str]]:
        import json

        monitor = json.loads((lab.root / via_hub / "stack.json").read_text())["nats_url"]
        import ssl

        tls = ssl.create_default_context(cafile=str(lab.lab_dir / "ca.pem"))
        nc = await nats.connect(servers=monitor.split(","), tls=tls, connect_timeout=3, max_reconnect_attempts=1,
                                dont_randomize=True, inbox_prefix="_INBOX.monitor")
        try:
            js = nc.jetstream(timeout=5)
            info = await js.stream_info(f"KV_{subjects.HEALTH_BUCKET}")
            kv = await js.key_value(subjects.HEALTH_BUCKET)
            try:
                return info.config.num_replicas or 1, set(await kv.keys())
            except NoKeysError:
                return info.config.num_replicas or 1, set()
        finally:
            await nc.close()

    return asyncio.run(read())


def test_the_health_bucket_has_three_replicas(lab: LabStack) -> None:
    # One read that holds both keys: a second read right after the first could meet the bucket
    # mid leader change (the previous test cut a hub off) and list nothing.
    reports: list[tuple[int, set[str]]] = []

    def leader_and_heartbeat() -> bool:
        reports.append(_kv_report(lab, "hub2"))
        return {subjects.HEALTH_HEARTBEAT_KEY, subjects.HEALTH_LEADER_KEY} <= reports[-1][1]

    wait_until(leader_and_heartbeat, 30, "a health leader and its heartbeat in the bucket", interval_s=0.5)
    assert reports[-1][0] == 3


def test_every_bucket_a_gateway_creates_has_three_replicas(lab: LabStack) -> None:
    """The Responses store and the config revisions, created through shared/buckets.py by the
    gateway's NATS user (its permissions, as a gateway would), get R3 on the cluster too."""
    async def replicas() -> dict[str, int]:
        secrets = json.loads((lab.lab_dir / "secrets.json").read_text())
        described = lab_file.Lab(hubs=tuple(lab_file.HubNode(name=h, address=lab.net.hosts[h].address)
                                            for h in lab.hub_names))
        tls = ssl.create_default_context(cafile=str(lab.lab_dir / "ca.pem"))
        nc = await nats.connect(servers=lab_file.urls(described, "gateway", secrets["gateway"]).split(","), tls=tls,
                                connect_timeout=3, inbox_prefix="_INBOX.gateway")
        try:
            js = nc.jetstream(timeout=5)
            found = {}
            for bucket in (subjects.RESPONSES_BUCKET, subjects.CONFIG_BUCKET):
                await buckets.open_bucket(js, bucket, description="netlab")
                found[bucket] = (await js.stream_info(f"KV_{bucket}")).config.num_replicas or 1
            return found
        finally:
            await nc.close()

    assert asyncio.run(replicas()) == {subjects.RESPONSES_BUCKET: 3, subjects.CONFIG_BUCKET: 3}


def test_a_killed_nats_node_under_load(lab: LabStack) -> None:
    """hub1's NATS node dies (its keeper frozen, so it stays dead); its services, and the GPU host
    that preferred it, move to the other two nodes."""
    _, keys_before = _kv_report(lab, "hub2")
    keeper = lab.net.pids("hub1", "cli hub")
    node = lab.net.pids("hub1", "nats-server")
    assert keeper and node
    killed_at = 0.0

    def kill_node() -> None:
        nonlocal killed_at
        for pid in keeper:
            os.kill(pid, signal.SIGSTOP)
        for pid in node:
            os.kill(pid, signal.SIGKILL)
        killed_at = time.monotonic()

    try:
        results = _load(lab, lab.hub_names, "lab-model", seconds=14, during=kill_node, at_s=3)
        after = [r for r in results if r[0] > killed_at + 5]
        failed = [r for r in results if r[2] is None]
        print(f"\n{len(results)} requests, {len(failed)} failed; slowest {max(r[1] for r in results):.2f}s; "
              f"{len(after)} started 5 s after the kill, {sum(r[2] is None for r in after)} of them failed")
        assert max(r[1] for r in results) < 12, "a request hung"
        assert after and all(r[2] is not None for r in after), "requests still fail 5 s after the kill"
        assert len(failed) <= 12
        replicas, keys_after = _kv_report(lab, "hub3")
        assert replicas == 3 and keys_before <= keys_after  # provider states survive the lost node
        for hub in lab.hub_names:  # hub1's gateway too: its services moved to a live node
            assert lab.answers(hub, "lab-model") is not None, hub
    finally:
        for pid in keeper:
            os.kill(pid, signal.SIGCONT)  # the keeper restarts the node
        wait_until(lambda: bool(lab.net.pids("hub1", "nats-server")), 30, "hub1's node to be restarted")


def test_a_partitioned_gpu_host_leaves_rotation_and_comes_back(lab: LabStack) -> None:
    before = {g: lab.sim_stats(g)["requests"] for g in lab.gpu_names}
    outcomes: list[tuple[float, float, str | None]] = []
    lab.net.partition("gpu1")
    cut_at = time.monotonic()
    try:
        while time.monotonic() - cut_at < 12:
            outcomes.append(_timed(lambda: lab.answers("hub2", "only-gpu1", timeout_s=30)))
    finally:
        lab.net.heal("gpu1")
    healed_at = time.monotonic()
    back: list[tuple[float, float, str | None]] = []
    while time.monotonic() - healed_at < 20:
        back.append(_timed(lambda: lab.answers("hub2", "only-gpu1", timeout_s=30)))
        if back[-1][2] == "gpu1":
            break
        time.sleep(0.2)
    print(f"\npartitioned: {len(outcomes)} requests, served by {dict(Counter(o[2] for o in outcomes))}, "
          f"slowest {max(o[1] for o in outcomes):.2f}s; "
          f"back on gpu1 {back[-1][0] - healed_at:.1f}s after healing")
    assert all(o[2] == "gpu2" for o in outcomes), "a request failed or was served by the cut host"
    assert max(o[1] for o in outcomes) < 10, "a request hung"
    out_of_rotation = [o for o in outcomes if o[0] - cut_at > 8]
    assert out_of_rotation and max(o[1] for o in out_of_rotation) < 1, "still waiting on the cut host after 8 s"
    assert back[-1][2] == "gpu1", "gpu1 did not come back by itself"
    after = {g: lab.sim_stats(g)["requests"] for g in lab.gpu_names}
    served = len(outcomes) + len(back)
    # Every answer came from one generation: none ran twice (nothing reached gpu1 while it was cut).
    assert sum(after[g] - before[g] for g in lab.gpu_names) == served


TOKENS, ITL_MS = 20, 10


def _stream(lab: LabStack, hub: str, model: str) -> tuple[float, float]:
    """(time to the first content event, mean gap between content events) of one stream."""
    started = time.monotonic()
    seen: list[float] = []
    with httpx.stream("POST", lab.gateway(hub) + "/v1/chat/completions", timeout=30, trust_env=False,
                      headers={"cache-control": "no-store"},
                      json={"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}],
                            "simulator": {"tokens": TOKENS, "itl_ms": ITL_MS}}) as r:
        for line in r.iter_lines():
            if line.startswith("data:") and '"content"' in line:
                seen.append(time.monotonic() - started)
    assert len(seen) >= 2, seen
    return seen[0], (seen[-1] - seen[0]) / (len(seen) - 1)


def _delay(lab: LabStack, gpu: str) -> tuple[float, Callable[[], None]]:
    """Puts 20 ms between the hub and `gpu`: netem on its interface where the kernel has it (a 20 ms
    round trip), else the TCP delay proxy on its path to the hub's NATS (20 ms each way: 40 ms).
    Returns the round trip added and how to take it away."""
    try:
        lab.net.netem(gpu, delay_ms=20)
        return 0.020, lambda: lab.net.netem(gpu, delay_ms=0)
    except NetemUnavailable as e:
        print(f"\n{e}: a TCP delay proxy instead")
    lab.delay_gpu(gpu, 20)
    return 0.040, lambda: lab.undelay_gpu(gpu)


def _serving(lab: LabStack, gpu: str) -> None:
    wait_until(lambda: lab.answers("hub2", f"only-{gpu}") == gpu, 30, f"{gpu} to serve", interval_s=0.2)


def test_twenty_ms_to_a_gpu_host_adds_about_one_round_trip(lab: LabStack) -> None:
    def median() -> tuple[float, float]:
        runs = [_stream(lab, "hub2", "only-gpu1") for _ in range(15)][3:]
        return statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)

    base_ttft, base_gap = median()
    rtt, undo = _delay(lab, "gpu1")
    try:
        _serving(lab, "gpu1")
        slow_ttft, slow_gap = median()
    finally:
        undo()
    _serving(lab, "gpu1")
    added = slow_ttft - base_ttft
    print(f"\nround trip +{rtt * 1000:.0f} ms: TTFT {base_ttft * 1000:.1f} -> {slow_ttft * 1000:.1f} ms "
          f"(+{added * 1000:.1f}); gap between tokens {base_gap * 1000:.1f} -> {slow_gap * 1000:.1f} ms")
    assert 0.5 * rtt < added < 3 * rtt, "not about one round trip"
    assert abs(slow_gap - base_gap) < 0.003, "the delay is paid per token, not once"


def test_a_lost_gateway_and_router_host_leaves_the_others_serving(lab: LabStack) -> None:
    lab.net.partition("hub1")
    lost_at = time.monotonic()
    try:
        results = _load(lab, ["hub2", "hub3"], "lab-model", seconds=12)
        late = [r for r in results if r[0] - lost_at > 6]
        print(f"\nhub1 cut: {len(results)} requests through hub2/hub3, {sum(r[2] is None for r in results)} failed, "
              f"slowest {max(r[1] for r in results):.2f}s")
        assert max(r[1] for r in results) < 12, "a request hung"
        assert late and all(r[2] is not None for r in late)
    finally:
        lab.net.heal("hub1")
    wait_until(lambda: lab.answers("hub1", "lab-model") is not None, 30, "hub1 to serve again", interval_s=0.5)
