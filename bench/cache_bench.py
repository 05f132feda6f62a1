"""Response-cache latency: a hit next to the miss path, measured in one run against one stack.

Starts NATS, a simulator (no artificial latency), a router, a worker and two gateways (in-process
LRU, and Redis when `redis-server` is on PATH or REDIS_URL is set), then times sequential
requests with a bare keep-alive HTTP/1.1 client (a few µs of its own), so the numbers are the
gateway's:

- hit:          the same body again and again, answered from the cache (JSON and SSE)
- miss:         a new body each time: gateway → NATS → router → worker → simulator and back
- cache off:    the same body with `Cache-Control: no-cache`: the miss path plus a skipped lookup

  python bench/cache_bench.py [--hits 3000] [--misses 500]

Target: a JSON hit answered in under 0.5 ms p50.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import yaml  # noqa: E402

from shared.embedded_nats import EmbeddedNats, free_port, wait_for_port  # noqa: E402
from shared.processes import die_with_parent  # noqa: E402

MODEL = "bench-model"


class Client:
    """One keep-alive connection; just enough HTTP/1.1 for Content-Length and chunked replies."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.port = port

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buffer += data
        head, self.buffer = self.buffer.split(marker, 1)
        return head

    def _read_exactly(self, n: int) -> bytes:
        while len(self.buffer) < n:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("closed")
            self.buffer += data
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str],
                                                                                          bytes]:
        extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
        self.sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{extra}"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = self._read_until(b"\r\n\r\n").decode()
        status_line, *lines = head.split("\r\n")
        found = {k.lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
        if "content-length" in found:
            payload = self._read_exactly(int(found["content-length"]))
        else:
            parts = []
            while True:
                size = int(self._read_until(b"\r\n"), 16)
                parts.append(self._read_exactly(size + 2)[:-2])
                if size == 0:
                    break
            payload = b"".join(parts)
        return int(status_line.split()[1]), found, payload


def percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)

    def at(q: float) -> float:
        return round(s[min(len(s) - 1, int(q * len(s)))] * 1000, 3)

    return {"p50_ms": at(0.50), "p90_ms": at(0.90), "p99_ms": at(0.99), "n": len(s)}


def timed(client: Client, bodies: list[bytes], expect: str | None, headers: dict[str, str] | None = None
          ) -> list[float]:
    out = []
    for body in bodies:
        t0 = time.perf_counter()
        status, found, _ = client.post("/v1/chat/completions", body, headers)
        out.append(time.perf_counter() - t0)
        if status != 200 or (expect is not None and found.get("x-aiub-cache") != expect):
            raise RuntimeError(f"unexpected reply: {status} x-aiub-cache={found.get('x-aiub-cache')}")
    return out


def body(seed: int, stream: bool = False) -> bytes:
    return json.dumps({"model": MODEL, "messages": [{"role": "user", "content": "How fast is a cache hit?"}],
                       "seed": seed, "stream": stream, "simulator": {"tokens": 16}}).encode()


def spawn(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as f:
        return subprocess.Popen([sys.executable, "-m", "cli", *argv], env=env, cwd=HERE.parent, stdout=f,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)


def wait_ready(port: int, proc: subprocess.Popen[bytes]) -> None:
    wait_for_port("127.0.0.1", port, 30, proc)
    give_up = time.monotonic() + 30
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if s.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        if time.monotonic() > give_up:
            raise TimeoutError("gateway not ready")
        time.sleep(0.05)


def measure(port: int, hits: int, misses: int) -> dict[str, Any]:
    client = Client(port)
    timed(client, [body(-1)] * 200 + [body(-2, True)] * 50, None)  # warm-up, and the entries to hit
    results = {
        "hit_json": percentiles(timed(client, [body(-1)] * hits, "hit")),
        "hit_sse": percentiles(timed(client, [body(-2, True)] * hits, "hit")),
        "miss": percentiles(timed(client, [body(i) for i in range(misses)], "miss")),
        "lookup_skipped": percentiles(timed(client, [body(-1)] * misses, "bypass", {"cache-control": "no-cache"})),
    }
    client.sock.close()
    return results


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hits", type=int, default=3000)
    ap.add_argument("--misses", type=int, default=500)
    args = ap.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="aiub-cache-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    redis_proc: subprocess.Popen[bytes] | None = None
    nats = EmbeddedNats(work / "nats").start()
    env = {**os.environ, "NATS_URL": nats.url, "PYTHONUNBUFFERED": "1"}
    for name in ("REDIS_URL", "AIUB_MASTER_KEY", "AIUB_CONFIG"):
        env.pop(name, None)
    try:
        sim_port = free_port()
        procs.append(spawn(["simulator", "--flavor", "openai", "--port", str(sim_port), "--models", "backend"], env,
                           work / "simulator.log"))
        wait_for_port("127.0.0.1", sim_port, 20, procs[-1])
        config = work / "config"
        config.mkdir()
        (config / "providers.yaml").write_text(yaml.safe_dump({"providers": {"sim": {
            "type": "vllm", "base_url": f"http://127.0.0.1:{sim_port}", "max_concurrency": 64,
            "models": {MODEL: {"backend_model": "backend"}}}}}))
        (config / "model-mappings.yaml").write_text(yaml.safe_dump({"exact_matches": {MODEL: {"provider": "sim"}}}))
        (config / "aiub.yaml").write_text("{}\n")
        common = ["--config", str(config), "--log-level", "WARNING"]
        procs.append(spawn(["router", *common], env, work / "router.log"))
        procs.append(spawn(["worker", "--provider", "sim", *common], env, work / "worker.log"))

        redis_url = os.environ.get("REDIS_URL")
        if not redis_url and shutil.which("redis-server"):
            redis_port = free_port()
            redis_proc = subprocess.Popen(["redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
                                           "--save", "", "--appendonly", "no", "--dir", str(work)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                          preexec_fn=die_with_parent)
            wait_for_port("127.0.0.1", redis_port, 10, redis_proc)
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
        stores = {"memory": env} | ({"redis": {**env, "REDIS_URL": redis_url}} if redis_url else {})
        report: dict[str, Any] = {}
        for store, store_env in stores.items():
            port = free_port()
            gateway = spawn(["gateway", "--port", str(port), *common], store_env, work / f"gateway-{store}.log")
            procs.append(gateway)
            wait_ready(port, gateway)
            report[store] = measure(port, args.hits, args.misses)
            gateway.terminate()
            gateway.wait(10)
    finally:
        for proc in reversed(procs):
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(10)
        nats.stop()
        shutil.rmtree(work, ignore_errors=True)

    print(f"{'store':<8} {'path':<16} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'n':>6}")
    for store, rows in report.items():
        for path, row in rows.items():
            print(f"{store:<8} {path:<16} {row['p50_ms']:>8} {row['p90_ms']:>8} {row['p99_ms']:>8} {row['n']:>6}")
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
