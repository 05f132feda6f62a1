"""Gateway overhead benchmark: the same load straight to a simulator and through aiub, in one run.

Starts `aiub simulator --flavor openai` as the backend and `aiub up` in front of it (bench/stack.py),
then runs each scenario against both targets, interleaved (the order alternates per repetition),
with bench/loadgen.py as a separate process. Prints markdown tables: req/s, p50/p99 latency and
time to first token with aiub/direct ratios and added ms, and CPU µs per request per service
(from /proc around the measured window).

  python bench/run.py --quick                 # ~1 minute smoke run
  python bench/run.py --duration 10 --reps 3  # a fuller run
  python bench/run.py --profile gateway,router,worker   # cProfile those services (see bench/README.md)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench import procstat, report  # noqa: E402
from bench.stack import MODEL, start  # noqa: E402
from shared.embedded_nats import free_port, wait_for_port  # noqa: E402


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    conc: int
    stream: bool = False
    knobs: dict[str, Any] = field(default_factory=dict)  # per-request simulator knobs, in the body
    long: bool = False  # uses --lat-duration (slow replies need a longer window for a sample)


def scenarios(a: argparse.Namespace) -> list[Scenario]:
    out = [Scenario(f"ns{c}", f"non-stream c={c}", c) for c in a.conc]
    out += [Scenario(f"st{c}", f"stream c={c}, {a.stream_tokens} tokens", c, True, {"tokens": a.stream_tokens})
            for c in a.stream_conc]
    out.append(Scenario("lat", "stream c=1, TTFT 50 ms + 10 ms/token, 16 tokens", 1, True,
                        {"tokens": 16, "ttft_ms": 50, "itl_ms": 10}, long=True))
    return [s for s in out if not a.only or any(s.key.startswith(o) for o in a.only)]


def run_load(url: str, sc: Scenario, duration: float, warmup: float, pids: dict[str, int]) -> dict[str, Any]:
    argv = [sys.executable, str(HERE / "loadgen.py"), "--url", url, "--model", MODEL, "-c", str(sc.conc),
            "-d", str(duration), "--warmup", str(warmup), "--marks"]
    if sc.stream:
        argv.append("--stream")
    if sc.knobs:
        argv += ["--extra", json.dumps({"simulator": sc.knobs})]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    before = after = None
    t0 = t1 = 0.0
    result = None
    for line in proc.stdout:
        if line.startswith("#start"):
            before, t0 = procstat.snapshot(pids), time.monotonic()
        elif line.startswith("#end"):
            after, t1 = procstat.snapshot(pids), time.monotonic()
        elif line.startswith("{"):
            result = json.loads(line)
    proc.wait()
    if result is None or before is None or after is None:
        raise RuntimeError(f"loadgen failed ({proc.returncode}) for {sc.key} at {url}")
    return {"load": result, "cpu": procstat.delta(before, after), "elapsed_s": t1 - t0}


def idle_cpu(pids: dict[str, int], seconds: float) -> str:
    """Background CPU of the idle stack (load reports, heartbeats, health): it inflates per-request
    CPU in the slow-backend scenario, where few requests share the window."""
    before = procstat.snapshot(pids)
    time.sleep(seconds)
    used = procstat.delta(before, procstat.snapshot(pids))
    parts = [f"{name} {used[name] / seconds * 1000:.1f}" for name in pids if name in used]
    return f"idle stack CPU over {seconds:g}s, ms per second: " + ", ".join(parts)


def start_simulator(workdir: Path, tokens: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (workdir / "simulator.log").open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "cli", "simulator", "--flavor", "openai", "--port", str(port),
                             "--models", MODEL, "--tokens", str(tokens)],
                            cwd=HERE.parent, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    wait_for_port("127.0.0.1", port, 20, proc)
    return proc, f"http://127.0.0.1:{port}/v1"


def profile_env(services: list[str], out_dir: Path) -> dict[str, str]:
    if not services:
        return {}
    out_dir.mkdir(parents=True, exist_ok=True)
    path = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": str(HERE / "profile_hook") + (os.pathsep + path if path else ""),
            "AIUB_BENCH_PROFILE": ",".join(services), "AIUB_BENCH_PROFILE_DIR": str(out_dir)}


def header(a: argparse.Namespace, stack_pids: dict[str, int]) -> str:
    load = Path("/proc/loadavg").read_text().split()[:3]
    return "\n".join([
        f"aiub bench/run.py, {datetime.datetime.now().isoformat(timespec='seconds')}, "
        f"{platform.node()} ({os.cpu_count()} cores), Python {platform.python_version()}",
        f"command: {' '.join(sys.argv)}",
        f"duration {a.duration}s (lat {a.lat_duration}s), warm-up {a.warmup}s, reps {a.reps}, "
        f"simulator tokens {a.tokens}; load average before: {' '.join(load)}",
        f"services: {', '.join(f'{k}={v}' for k, v in stack_pids.items())}", ""])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=8.0, help="measured seconds per sample")
    ap.add_argument("--lat-duration", type=float, default=12.0, help="the same for the slow-backend scenario")
    ap.add_argument("--warmup", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--conc", type=lambda s: [int(c) for c in s.replace(",", " ").split()], default=[1, 16, 64],
                    help='non-streaming concurrencies, e.g. "1 16 64"')
    ap.add_argument("--stream-conc", type=lambda s: [int(c) for c in s.replace(",", " ").split()], default=[16])
    ap.add_argument("--stream-tokens", type=int, default=64)
    ap.add_argument("--tokens", type=int, default=16, help="simulator tokens per non-streaming reply")
    ap.add_argument("--only", nargs="+", default=[],
                    help="scenario keys to run, by prefix: ns st lat, or ns64")
    ap.add_argument("--idle", type=float, default=3.0, help="seconds to measure the idle stack's CPU first")
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 s samples, 1 rep (~1 minute)")
    ap.add_argument("--port", type=int, default=0, help="gateway port (default: a free one)")
    ap.add_argument("--log-level", default="INFO", help="log level of the aiub services")
    ap.add_argument("--profile", default="", help="comma-separated services to run under cProfile")
    ap.add_argument("--out", default=None, help="directory for results.json, table.md and profiles")
    a = ap.parse_args(argv)
    a.only = [key for arg in a.only for key in arg.replace(",", " ").split()]
    if a.quick:
        a.duration, a.lat_duration, a.warmup, a.reps = 2.0, 3.0, 0.5, 1
    out_dir = Path(a.out or f"/tmp/aiub-bench/run-{time.strftime('%Y%m%d-%H%M%S')}")
    out_dir.mkdir(parents=True, exist_ok=True)

    with tempfile.TemporaryDirectory(prefix="aiub-bench-") as tmp:
        workdir = Path(tmp)
        sim, backend = start_simulator(workdir, a.tokens)
        stack = None
        try:
            env = profile_env([s for s in a.profile.split(",") if s], out_dir / "profiles")
            stack = start(backend, a.port or free_port(), workdir=workdir, log_level=a.log_level, env=env)
            pids = {**stack.pids(), "simulator": sim.pid}
            head = header(a, pids) + idle_cpu(pids, a.idle) + "\n"
            print(head, file=sys.stderr)
            samples = []
            for sc in scenarios(a):
                for rep in range(a.reps):
                    targets = [("direct", backend), ("aiub", stack.url)]
                    for target, url in targets if rep % 2 == 0 else targets[::-1]:
                        s = run_load(url, sc, a.lat_duration if sc.long else a.duration, a.warmup, pids)
                        s.update(scenario=sc.key, label=sc.label, target=target, rep=rep)
                        samples.append(s)
                        ld = s["load"]
                        print(f"  {sc.label:<48} {target:<6} rps={ld['rps']:<8} "
                              f"p50={(ld['latency_ms'] or {}).get('p50')} ms errors={ld['errors']}",
                              file=sys.stderr)
        finally:
            if stack is not None:
                stack.stop()
            sim.terminate()
            sim.wait(10)
    table = report.tables(samples)
    (out_dir / "results.json").write_text(json.dumps(samples, indent=1))
    (out_dir / "table.md").write_text(head + "\n" + table + "\n")
    print(head + "\n" + table)
    if a.profile:
        served = sum(s["load"]["ok"] + s["load"]["warmup_ok"] for s in samples if s["target"] == "aiub")
        print(f"\nprofiles: python bench/profile_report.py {out_dir}/profiles/*.prof --requests {served}",
              file=sys.stderr)
    print(f"\nresults: {out_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
