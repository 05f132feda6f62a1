"""Routing that knows the engines, measured: simulated engines behind aiub, one stack per strategy.

  python bench/routing_bench.py                 # every scenario (~4 minutes)
  python bench/routing_bench.py --only prefix   # or: --only uneven, --only stall

- prefix: 4 engines (`aiub simulator --engine vllm`), `--conversations` multi-turn chats at once,
  each on one of 4 shared system prompts, every turn resending the whole history (as chat clients
  do). Per strategy: the engines' own prefix cache hit rate (vllm:prefix_cache_hits_total /
  queries_total, in tokens) and the mean and p99 time to first token the client saw.
- uneven: 3 engines, one twice as fast (half the prefill and per-token time), prompts that share
  nothing, a closed loop of `--concurrency` clients; worker slots above the engines' sequence cap,
  so requests queue inside the engines. Per strategy: throughput and p99 latency.
- stall: 4 engines, one of which stalls now and then (`--stall-rate` of the requests it starts
  wait `--stall-ms` more before their first token), round robin, a closed loop of
  `--concurrency` streaming clients. Without hedging, with `after_ms` fixed (`--hedge-ms`) and
  with `auto`: p50/p99 time to first token, and the extra requests (the gateway's
  gateway_hedges_started_total over the requests sent).

Every engine and stack is fresh per strategy (cold caches). Results: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.stack import _ready  # noqa: E402
from shared.embedded_nats import free_port  # noqa: E402
from shared.processes import die_with_parent  # noqa: E402

MODEL = "bench-model"
WORDS = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau "
         "upsilon phi chi psi omega").split()


def words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


@dataclass
class Engine:
    process: subprocess.Popen[bytes]
    url: str


def start_engine(*, prefill_ms: float, itl_ms: float, max_seqs: int, tokens: int, stall_rate: float = 0.0,
                 stall_ms: float = 0.0) -> Engine:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.simulator", "--flavor", "openai", "--port", str(port), "--models", MODEL,
         "--engine", "vllm", "--max-seqs", str(max_seqs), "--base-ttft-ms", "20",
         "--prefill-ms-per-token", str(prefill_ms), "--itl-ms", str(itl_ms), "--tokens", str(tokens),
         "--kv-tokens", "100000", "--stall-rate", str(stall_rate), "--stall-ms", str(stall_ms)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=die_with_parent)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if httpx.get(url + "/health", timeout=0.5).status_code == 200:
                return Engine(proc, url)
        except httpx.HTTPError:
            time.sleep(0.05)
    raise RuntimeError("simulator did not start")


def up(engines: list[Engine], strategy: str, workdir: Path, max_concurrency: int,
       hedging: dict[str, object] | None = None) -> subprocess.Popen[bytes]:
    config = workdir / "config"
    config.mkdir(parents=True)
    providers = {f"e{i}": {"type": "vllm", "base_url": e.url, "max_concurrency": max_concurrency, "queue_size": 256,
                           "load_endpoint": "/metrics", "models": {MODEL: {}}} for i, e in enumerate(engines)}
    (config / "providers.yaml").write_text(yaml.safe_dump({"providers": providers}))
    mappings: dict[str, object] = {"load_balancing": {MODEL: {"providers": list(providers), "strategy": strategy}}}
    if hedging is not None:
        mappings["hedging"] = {MODEL: hedging}
    (config / "model-mappings.yaml").write_text(yaml.safe_dump(mappings))
    (config / "aiub.yaml").write_text(yaml.safe_dump({"cache": {"enabled": False}}))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "AIUB_CONFIG", "REDIS_URL", "AIUB_MASTER_KEY")}
    log = (workdir / "up.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "cli", "up", "--config", str(config), "--port", str(port),
                             "--state-dir", str(workdir / "state"), "--log-level", "WARNING"],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, preexec_fn=die_with_parent)
    proc.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    deadline = time.monotonic() + 60
    while not _ready(proc.url):  # type: ignore[attr-defined]
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError((workdir / "up.log").read_text()[-2000:])
        time.sleep(0.2)
    time.sleep(1.5)  # the workers' first load reports and backend reads reach the router
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


async def stream(client: httpx.AsyncClient, messages: list[dict[str, str]]) -> tuple[float, float, str]:
    """(time to first content, total time, the answer's text) of one streamed chat request."""
    t0 = time.perf_counter()
    ttft = None
    text = []
    async with client.stream("POST", "/v1/chat/completions", json={
            "model": MODEL, "messages": messages, "stream": True}) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            delta = orjson.loads(line[6:])["choices"]
            content = delta[0]["delta"].get("content") if delta else None
            if content:
                if ttft is None:
                    ttft = time.perf_counter() - t0
                text.append(content)
    total = time.perf_counter() - t0
    return (ttft if ttft is not None else total), total, "".join(text)


def prefix_counters(engines: list[Engine]) -> tuple[float, float]:
    hits = queries = 0.0
    for e in engines:
        text = httpx.get(e.url + "/metrics").text
        hits += float(re.search(r"^vllm:prefix_cache_hits_total\S* (\S+)", text, re.M).group(1))  # type: ignore[union-attr]
        queries += float(re.search(r"^vllm:prefix_cache_queries_total\S* (\S+)", text, re.M).group(1))  # type: ignore[union-attr]
    return hits, queries


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def conversations(url: str, n: int, turns: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    systems = [words(rng, 200) for _ in range(4)]
    ttfts: list[float] = []

    async def one(i: int, client: httpx.AsyncClient) -> None:
        local = random.Random(seed * 1000 + i)
        messages = [{"role": "system", "content": systems[i % len(systems)]}]
        await asyncio.sleep(local.random() * 0.5)
        for _ in range(turns):
            messages.append({"role": "user", "content": words(local, 80)})
            ttft, _, answer = await stream(client, messages)
            ttfts.append(ttft)
            messages.append({"role": "assistant", "content": answer})
            await asyncio.sleep(local.random() * 0.2)  # the user reads, then types

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=256)) as client:
        await asyncio.gather(*(one(i, client) for i in range(n)))
    return ttfts


async def closed_loop(url: str, concurrency: int, duration_s: float, seed: int) -> tuple[int, list[float]]:
    rng = random.Random(seed)
    latencies: list[float] = []
    end = time.perf_counter() + duration_s

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < end:
            _, total, _ = await stream(client, [{"role": "user", "content": words(rng, 200)}])
            latencies.append(total)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=256)) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    return len(latencies), latencies


def prefix_scenario(args: argparse.Namespace) -> None:
    print(f"\n### Multi-turn conversations: 4 engines, {args.conversations} conversations x {args.turns} turns, "
          "4 shared system prompts\n")
    print("| strategy | prefix cache hit rate | mean TTFT (ms) | p99 TTFT (ms) |")
    print("|---|---|---|---|")
    for strategy in ("round_robin", "least_loaded", "prefix_affinity"):
        engines = [start_engine(prefill_ms=1.0, itl_ms=4, max_seqs=8, tokens=48) for _ in range(4)]
        with tempfile.TemporaryDirectory(prefix="aiub-routing-") as tmp:
            stack = up(engines, strategy, Path(tmp), max_concurrency=16)
            try:
                ttfts = asyncio.run(conversations(stack.url, args.conversations, args.turns,  # type: ignore[attr-defined]
                                                  args.seed))
                hits, queries = prefix_counters(engines)
            finally:
                stop(stack)
                for e in engines:
                    e.process.terminate()
        print(f"| {strategy} | {hits / queries:.1%} | {statistics.mean(ttfts) * 1000:.0f} | "
              f"{p(ttfts, 0.99) * 1000:.0f} |", flush=True)


def uneven_scenario(args: argparse.Namespace) -> None:
    print(f"\n### Uneven engines: one twice as fast of 3, {args.concurrency} clients, {args.duration:g} s, "
          "nothing shared\n")
    print("| strategy | requests/s | mean latency (ms) | p99 latency (ms) |")
    print("|---|---|---|---|")
    for strategy in ("round_robin", "least_loaded", "backend_load"):
        engines = [start_engine(prefill_ms=0.5, itl_ms=2, max_seqs=4, tokens=32),
                   start_engine(prefill_ms=1.0, itl_ms=4, max_seqs=4, tokens=32),
                   start_engine(prefill_ms=1.0, itl_ms=4, max_seqs=4, tokens=32)]
        with tempfile.TemporaryDirectory(prefix="aiub-routing-") as tmp:
            stack = up(engines, strategy, Path(tmp), max_concurrency=32)
            try:
                count, latencies = asyncio.run(closed_loop(stack.url, args.concurrency,  # type: ignore[attr-defined]
                                                           args.duration, args.seed))
            finally:
                stop(stack)
                for e in engines:
                    e.process.terminate()
        print(f"| {strategy} | {count / args.duration:.1f} | {statistics.mean(latencies) * 1000:.0f} | "
              f"{p(latencies, 0.99) * 1000:.0f} |", flush=True)


async def ttft_loop(url: str, concurrency: int, duration_s: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    ttfts: list[float] = []
    end = time.perf_counter() + duration_s

    async def client_loop(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < end:
            ttft, _, _ = await stream(client, [{"role": "user", "content": words(rng, 100)}])
            ttfts.append(ttft)

    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=256)) as client:
        await asyncio.gather(*(client_loop(client) for _ in range(concurrency)))
    return ttfts


def hedges_started(url: str) -> float:
    text = httpx.get(url + "/metrics", timeout=5).text
    return sum(float(v) for v in re.findall(r"^gateway_hedges_started_total\S* (\S+)", text, re.M))


def stall_scenario(args: argparse.Namespace) -> None:
    print(f"\n### One engine of 4 stalling: {args.stall_rate:.0%} of its requests wait {args.stall_ms:g} ms more; "
          f"round robin, {args.concurrency} clients, {args.duration:g} s\n")
    print("| hedging | requests | p50 TTFT (ms) | p99 TTFT (ms) | max TTFT (ms) | extra requests |")
    print("|---|---|---|---|---|---|")
    for label, hedging in (("off", None), (f"after_ms: {args.hedge_ms:g}", {"after_ms": args.hedge_ms}),
                           ("after_ms: auto", {"after_ms": "auto"})):
        engines = [start_engine(prefill_ms=0.5, itl_ms=2, max_seqs=8, tokens=16, stall_rate=args.stall_rate,
                                stall_ms=args.stall_ms)]
        engines += [start_engine(prefill_ms=0.5, itl_ms=2, max_seqs=8, tokens=16) for _ in range(3)]
        with tempfile.TemporaryDirectory(prefix="aiub-routing-") as tmp:
            stack = up(engines, "round_robin", Path(tmp), max_concurrency=16, hedging=hedging)
            url = stack.url  # type: ignore[attr-defined]
            try:
                if hedging is not None and hedging["after_ms"] == "auto":
                    asyncio.run(ttft_loop(url, args.concurrency, 3.0, args.seed + 1))  # the router learns the p95
                before = hedges_started(url)
                ttfts = asyncio.run(ttft_loop(url, args.concurrency, args.duration, args.seed))
                extra = hedges_started(url) - before
            finally:
                stop(stack)
                for e in engines:
                    e.process.terminate()
        print(f"| {label} | {len(ttfts)} | {p(ttfts, 0.5) * 1000:.0f} | {p(ttfts, 0.99) * 1000:.0f} | "
              f"{max(ttfts) * 1000:.0f} | {extra / len(ttfts):.1%} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", choices=("prefix", "uneven", "stall"))
    parser.add_argument("--conversations", type=int, default=24)
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--concurrency", type=int, default=24)
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--stall-rate", type=float, default=0.08, help="stall: share of the stalling engine's requests")
    parser.add_argument("--stall-ms", type=float, default=2000.0, help="stall: how long a stall lasts")
    parser.add_argument("--hedge-ms", type=float, default=250.0, help="stall: the fixed hedging threshold")
    args = parser.parse_args()
    if args.only in (None, "prefix"):
        prefix_scenario(args)
    if args.only in (None, "uneven"):
        uneven_scenario(args)
    if args.only in (None, "stall"):
        stall_scenario(args)


if __name__ == "__main__":
    main()
