"""A small closed-loop load generator (aiohttp on uvloop) for OpenAI chat completions.

C workers each keep one request in flight for D seconds after an uncounted warm-up. Prints one
JSON line: ok, errors, rps, latency and (streaming) time-to-first-token percentiles in ms, and
the generator's own CPU seconds, so a saturated client can be told from a slow server.

  python bench/loadgen.py --url http://127.0.0.1:4000 -c 16 -d 5 [--stream] [--extra '{"simulator": {...}}']
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import time

import aiohttp
import orjson


def percentile(sorted_values: list[float], q: float) -> float | None:
    if not sorted_values:
        return None
    k = (len(sorted_values) - 1) * q / 100.0
    lo = int(k)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


def summary_ms(values: list[float]) -> dict[str, float | None] | None:
    if not values:
        return None
    s = sorted(values)
    return {f"p{q}": round(percentile(s, q) * 1000, 3) for q in (50, 90, 99)} | {  # type: ignore[operator]
        "mean": round(sum(s) / len(s) * 1000, 3), "max": round(s[-1] * 1000, 3)}


class Tally:
    def __init__(self) -> None:
        self.latency: list[float] = []
        self.ttft: list[float] = []
        self.done_at: list[float] = []  # perf_counter() when each answered request ended
        self.errors: dict[str, int] = {}

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


async def one(session: aiohttp.ClientSession, url: str, body: bytes, stream: bool, tally: Tally) -> None:
    t0 = time.perf_counter()
    async with session.post(url, data=body, headers={"content-type": "application/json"}) as resp:
        if resp.status != 200:
            await resp.read()
            tally.error(f"http_{resp.status}")
            return
        if not stream:
            data = await resp.read()
            if b'"choices"' not in data:
                tally.error("bad_body")
                return
            tally.latency.append(time.perf_counter() - t0)
            tally.done_at.append(time.perf_counter())
            return
        first = None
        buf = b""
        done = failed = False
        async for data in resp.content.iter_any():
            if first is None and b'"content":"' in data.replace(b'": "', b'":"').replace(b'"content":""', b""):
                first = time.perf_counter() - t0
            window = buf + data
            failed = failed or b'data: {"error"' in window  # a stream that broke ends with an error event
            buf = window[-64:]  # only the tail matters: the stream must end with [DONE]
            if b"data: [DONE]" in buf:
                done = True
        if failed or not done or first is None:
            tally.error("stream_error" if failed else "incomplete_stream" if not done else "no_content")
            return
        tally.ttft.append(first)
        tally.latency.append(time.perf_counter() - t0)
        tally.done_at.append(time.perf_counter())


async def phase(session: aiohttp.ClientSession, url: str, body: bytes, stream: bool, conc: int, seconds: float,
                tally: Tally) -> None:
    deadline = time.perf_counter() + seconds

    async def loop() -> None:
        while time.perf_counter() < deadline:
            try:
                await one(session, url, body, stream, tally)
            except (TimeoutError, aiohttp.ClientError) as e:
                tally.error(type(e).__name__)
                await asyncio.sleep(0.01)  # a refused connection must not become a hot loop

    await asyncio.gather(*(loop() for _ in range(conc)))


def mark(a: argparse.Namespace, line: str) -> None:
    # run.py samples every service's CPU counters when it reads these, bracketing the measured window.
    if a.marks:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


async def run(a: argparse.Namespace) -> dict[str, object]:
    base = a.url.rstrip("/")
    url = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
    request: dict[str, object] = {"model": a.model, "messages": [{"role": "user", "content": a.prompt}]}
    if a.stream:
        request["stream"] = True
    request.update(orjson.loads(a.extra) if a.extra else {})
    body = orjson.dumps(request)
    connector = aiohttp.TCPConnector(limit=a.concurrency, keepalive_timeout=120)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=a.timeout)) as session:
        warm = Tally()
        if a.warmup > 0:
            await phase(session, url, body, a.stream, a.concurrency, a.warmup, warm)
        tally = Tally()
        mark(a, "#start")
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        await phase(session, url, body, a.stream, a.concurrency, a.duration, tally)
        elapsed = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        mark(a, "#end")
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    ok = len(tally.latency)
    return {"url": url, "stream": a.stream, "concurrency": a.concurrency, "elapsed_s": round(elapsed, 3),
            "ok": ok, "errors": tally.errors, "rps": round(ok / elapsed, 1), "latency_ms": summary_ms(tally.latency),
            "ttft_ms": summary_ms(tally.ttft), "client_cpu_s": round(cpu, 3),
            "warmup_ok": len(warm.latency)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True, help="base URL, with or without /v1")
    ap.add_argument("--model", default="bench-model")
    ap.add_argument("-c", "--concurrency", type=int, default=1)
    ap.add_argument("-d", "--duration", type=float, default=5.0)
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--stream", action="store_true")
    ap.add_argument("--prompt", default="Say hello.")
    ap.add_argument("--extra", default="", help="JSON object merged into the request body")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--marks", action="store_true", help="print #start and #end around the measured window")
    a = ap.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        out = asyncio.run(run(a))
    else:
        out = uvloop.run(run(a))
    sys.stdout.write(orjson.dumps(out).decode() + "\n")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
