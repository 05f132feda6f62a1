"""Scale-out through aiub across GPU hosts made of network namespaces (issue 15 item 4).

For each N in --hosts it builds a namespace lab with tests/support/lab_stack.py (hub hosts
running `aiub hub`, N GPU hosts each running `aiub join` and a simulated vLLM engine on its
loopback: at most --max-seqs sequences at once, each a fixed --tokens x --itl-ms after a fixed
first-token delay), drives streaming load at `lab-model` (least_loaded over the N hosts) with
bench/loadgen.py's closed loop, --clients-per-host x N clients spread over the hub gateways,
and prints a table: streams/s against N x the one-host figure, and what the estimate for a
large lab rests on: NATS messages per streamed token (the hub nodes' /varz counters), router
and gateway CPU per request (/proc), health KV writes per second (the bucket's stream sequence).
Then, with the largest N, one GPU host's link is cut for --cut-s seconds and healed, and the
answered streams are counted per --bucket-s window.

Root only (network namespaces); a benchmark, not a test:

  sudo .venv/bin/python bench/scale_out.py                     # N = 1..4, then the cut (~4 min)
  sudo .venv/bin/python bench/scale_out.py --hosts 1,2 --no-cut
"""

from __future__ import annotations

import argparse
import asyncio
import json
import ssl
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import nats
import orjson

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import loadgen  # noqa: E402
from bench.procstat import process_cpu_s  # noqa: E402
from shared import subjects  # noqa: E402
from tests.support.lab_stack import LabStack  # noqa: E402
from tests.support.netlab import unavailable  # noqa: E402


@dataclass
class Window:
    seconds: float
    tally: loadgen.Tally
    started: float


@dataclass
class Counters:
    nats_in: int
    nats_out: int
    kv_seq: int
    cpu: dict[str, float]


def _services(lab: LabStack) -> dict[str, list[int]]:
    """The pids of each aiub service kind across the lab (all hubs' routers together, ...)."""
    found: dict[str, list[int]] = {}
    for hub in lab.hub_names:
        for kind in ("gateway", "router", "health"):
            found.setdefault(kind, []).extend(lab.net.pids(hub, f"-m cli {kind} "))
        found.setdefault("nats-server", []).extend(lab.net.pids(hub, "nats-server"))
    for gpu in lab.gpu_names:
        found.setdefault("worker", []).extend(lab.net.pids(gpu, "-m cli worker"))
    return found


async def _kv_seq(lab: LabStack) -> int:
    """The last sequence of the health bucket's stream: every write to it moves it by one."""
    monitor = json.loads((lab.root / lab.hub_names[0] / "stack.json").read_text())["nats_url"]
    tls = ssl.create_default_context(cafile=str(lab.lab_dir / "ca.pem"))
    nc = await nats.connect(servers=monitor.split(","), tls=tls, connect_timeout=3, max_reconnect_attempts=1,
                            dont_randomize=True, inbox_prefix="_INBOX.monitor")
    try:
        info = await nc.jetstream(timeout=5).stream_info(f"KV_{subjects.HEALTH_BUCKET}")
        return int(info.state.last_seq)
    finally:
        await nc.close()


async def _counters(lab: LabStack, pids: dict[str, list[int]]) -> Counters:
    nats_in = nats_out = 0
    async with httpx.AsyncClient(trust_env=False, timeout=3) as http:
        for hub in lab.hub_names:
            varz = (await http.get(f"http://{lab.net.hosts[hub].address}:8222/varz")).json()
            nats_in += varz["in_msgs"]
            nats_out += varz["out_msgs"]
    cpu = {kind: sum((process_cpu_s(p) or (0.0, 0.0))[0] for p in ps) for kind, ps in pids.items()}
    return Counters(nats_in, nats_out, await _kv_seq(lab), cpu)


async def _drive(lab: LabStack, clients: int, seconds: float, warmup_s: float, request: dict[str, Any],
                 during: Any = None) -> tuple[Window, Counters, Counters]:
    body = orjson.dumps(request)
    urls = [lab.gateway(h) + "/v1/chat/completions" for h in lab.hub_names]
    pids = _services(lab)
    connector = aiohttp.TCPConnector(limit=clients, keepalive_timeout=120)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120),
                                     trust_env=False) as session:
        async def spread(tally: loadgen.Tally, s: float) -> None:
            await asyncio.gather(*(loadgen.phase(session, urls[i % len(urls)], body, True, n, s, tally)
                                   for i, n in enumerate(_split(clients, len(urls)))))

        if warmup_s > 0:
            await spread(loadgen.Tally(), warmup_s)
        before = await _counters(lab, pids)
        tally, started = loadgen.Tally(), time.perf_counter()
        task = asyncio.create_task(spread(tally, seconds))
        if during is not None:
            await during(started)
        await task
        elapsed = time.perf_counter() - started
        after = await _counters(lab, pids)
    return Window(elapsed, tally, started), before, after


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def _lab(root: Path, a: argparse.Namespace, gpus: int) -> LabStack:
    sim = ("--engine", "vllm", "--max-seqs", str(a.max_seqs), "--base-ttft-ms", str(a.base_ttft_ms),
           "--prefill-ms-per-token", "0", "--tokens", str(a.tokens), "--itl-ms", str(a.itl_ms))
    return LabStack(root, hubs=a.hubs, gpus=gpus, sim_args=sim, max_concurrency=4 * a.max_seqs).start()


def _row(n: int, w: Window, before: Counters, after: Counters, tokens: int) -> dict[str, Any]:
    ok = len(w.tally.latency)
    streams = ok / w.seconds
    cpu_us = {k: (after.cpu[k] - before.cpu.get(k, 0.0)) / max(ok, 1) * 1e6 for k in after.cpu}
    return {"n": n, "ok": ok, "errors": sum(w.tally.errors.values()), "streams_s": streams,
            "ttft_p50_ms": statistics.median(w.tally.ttft) * 1000 if w.tally.ttft else None,
            "msgs_in_per_token": (after.nats_in - before.nats_in) / max(ok * tokens, 1),
            "msgs_out_per_token": (after.nats_out - before.nats_out) / max(ok * tokens, 1),
            "kv_writes_s": (after.kv_seq - before.kv_seq) / w.seconds, "cpu_us": cpu_us}


def _timeline(w: Window, bucket_s: float) -> list[int]:
    counts = [0] * int(w.seconds // bucket_s + 1)
    for t in w.tally.done_at:
        counts[min(int((t - w.started) // bucket_s), len(counts) - 1)] += 1
    return counts


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", default="1,2,3,4", help="the numbers of GPU hosts to measure")
    ap.add_argument("--hubs", type=int, default=1, help="hub hosts (1 or 3)")
    ap.add_argument("--max-seqs", type=int, default=4, help="each backend's sequence cap")
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--itl-ms", type=float, default=10.0)
    ap.add_argument("--base-ttft-ms", type=float, default=20.0)
    ap.add_argument("--clients-per-host", type=int, default=8, help="closed-loop clients per GPU host")
    ap.add_argument("--duration", type=float, default=15.0)
    ap.add_argument("--warmup", type=float, default=3.0)
    ap.add_argument("--no-cut", action="store_true", help="skip the lost-and-regained run")
    ap.add_argument("--cut-at", type=float, default=10.0, help="seconds into the cut run")
    ap.add_argument("--cut-s", type=float, default=15.0)
    ap.add_argument("--after-s", type=float, default=20.0, help="seconds of load after healing")
    ap.add_argument("--bucket-s", type=float, default=2.5)
    a = ap.parse_args(argv)
    if reason := unavailable():
        print(f"scale_out: no namespace lab here: {reason}", file=sys.stderr)
        return 2
    request = {"model": "lab-model", "stream": True, "cache": {"no-cache": True},  # measure the backends
               "messages": [{"role": "user", "content": "Say hello."}]}
    capacity = a.max_seqs / ((a.base_ttft_ms + a.itl_ms * (a.tokens - 1)) / 1000)
    print(f"# backend: vLLM engine simulator, {a.max_seqs} sequences, {a.tokens} tokens at {a.itl_ms} ms after "
          f"{a.base_ttft_ms} ms: at most {capacity:.1f} streams/s per GPU host; {a.hubs} hub host(s)\n")
    rows: list[dict[str, Any]] = []
    ns = [int(n) for n in a.hosts.split(",")]
    with tempfile.TemporaryDirectory(prefix="aiub-scale-") as tmp:
        for n in ns:
            lab = _lab(Path(tmp) / f"n{n}", a, n)
            try:
                w, before, after = asyncio.run(_drive(lab, a.clients_per_host * n, a.duration, a.warmup, request))
                rows.append(_row(n, w, before, after, a.tokens))
                print(json.dumps(rows[-1], default=lambda x: round(x, 2)), flush=True)
                if n == max(ns) and not a.no_cut:
                    cut = _cut_run(lab, a, request)
            finally:
                lab.close()
    _print_table(rows, a, capacity)
    if not a.no_cut:
        _print_cut(*cut, a)
    return 0


def _cut_run(lab: LabStack, a: argparse.Namespace, request: dict[str, Any]) -> tuple[Window, str, float, float]:
    victim = lab.gpu_names[-1]
    marks: dict[str, float] = {}

    async def cut(started: float) -> None:
        await asyncio.sleep(a.cut_at)
        lab.net.partition(victim)
        marks["cut"] = time.perf_counter() - started
        await asyncio.sleep(a.cut_s)
        lab.net.heal(victim)
        marks["heal"] = time.perf_counter() - started

    total = a.cut_at + a.cut_s + a.after_s
    w, _, _ = asyncio.run(_drive(lab, a.clients_per_host * len(lab.gpu_names), total, a.warmup, request, cut))
    return w, victim, marks["cut"], marks["heal"]


def _print_table(rows: list[dict[str, Any]], a: argparse.Namespace, capacity: float) -> None:
    one = rows[0]["streams_s"] / rows[0]["n"]
    print("\n| GPU hosts | clients | streams/s | × linear (N × one host) | of backend capacity | TTFT p50 ms "
          "| errors | NATS msgs in / out per token | health KV writes/s | router µs/req | gateway µs/req "
          "| worker µs/req | nats-server µs/req |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c = r["cpu_us"]
        print(f"| {r['n']} | {a.clients_per_host * r['n']} | {r['streams_s']:.1f} "
              f"| {r['streams_s'] / (one * r['n']):.3f} "
              f"| {r['streams_s'] / (capacity * r['n']):.0%} | {r['ttft_p50_ms']:.0f} | {r['errors']} "
              f"| {r['msgs_in_per_token']:.2f} / {r['msgs_out_per_token']:.2f} | {r['kv_writes_s']:.2f} "
              f"| {c.get('router', 0):.0f} | {c.get('gateway', 0):.0f} | {c.get('worker', 0):.0f} "
              f"| {c.get('nats-server', 0):.0f} |")


def _print_cut(w: Window, victim: str, cut_at: float, heal_at: float, a: argparse.Namespace) -> None:
    counts = _timeline(w, a.bucket_s)
    print(f"\n{victim}'s link cut at {cut_at:.1f} s, healed at {heal_at:.1f} s; answered streams per second, "
          f"{a.bucket_s:g} s windows ({len(w.tally.latency)} answered, errors: {w.tally.errors or 'none'}):\n")
    print("| window (s) | streams/s | phase |")
    print("|---|---|---|")
    for i, c in enumerate(counts):
        lo, hi = i * a.bucket_s, min((i + 1) * a.bucket_s, w.seconds)
        if hi <= lo:
            continue
        phase = "before" if hi <= cut_at else "cut" if lo >= cut_at and hi <= heal_at else \
            "after" if lo >= heal_at else "boundary"
        print(f"| {lo:.1f}–{hi:.1f} | {c / (hi - lo):.1f} | {phase} |")
    slowest = max(w.tally.latency) if w.tally.latency else 0.0
    print(f"\nslowest answered stream {slowest:.2f} s")


if __name__ == "__main__":
    sys.exit(main())
