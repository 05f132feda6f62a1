"""The demo stack's footprint: start time, memory per process, CPU per request per service.

Starts `aiub up --demo` (the repo's config/: a simulator per local provider) on a free port and
measures, for every aiub process and its NATS (the simulators are left out: they stand in for
the backends):

- start: seconds from starting `aiub up` to the first chat completion answered with 200;
- memory after start: RSS (and PSS, which splits shared pages fairly) of each process, summed;
- a load run (bench/loadgen.py, non-streaming then streaming): CPU µs per request of each
  process and the machine's other CPU meanwhile, then memory again.

  python bench/footprint.py [--up-args "--combined"] [--duration 8] [--conc 16] [--json OUT]

Extra `aiub up` arguments go in --up-args, so the same script measures a layout and its
alternative in turn. A benchmark, not a test: nothing here asserts.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from bench import procstat  # noqa: E402
from shared.embedded_nats import free_port  # noqa: E402


def _descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").rstrip("\0").split("\0")
    except OSError:
        return []


def name_of(argv: list[str]) -> str | None:
    """nats-server -> "nats"; `python -m cli worker --provider x` -> "worker-x";
    `python -m cli services router,health` -> "services[router,health]"; simulators -> None."""
    if argv and argv[0].endswith("nats-server"):
        return "nats"
    if "cli" not in argv:
        return None
    rest = argv[argv.index("cli") + 1:]
    if not rest or rest[0] == "simulator":
        return None
    if rest[0] == "worker" and "--provider" in rest:
        return "worker-" + rest[rest.index("--provider") + 1]
    if rest[0] == "services" and len(rest) > 1:
        return f"services[{rest[1]}]"
    return rest[0]


def processes(up_pid: int) -> dict[str, int]:
    found = {"up": up_pid}
    for pid in _descendants(up_pid):
        name = name_of(_cmdline(pid))
        if name is not None:
            found[name if name not in found else f"{name}-{pid}"] = pid
    return found


def memory_kb(pid: int) -> tuple[int, int]:
    """(RSS, PSS) in kB; (0, 0) once the process is gone."""
    try:
        rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                   if line.startswith("VmRSS:"))
        pss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
                   if line.startswith("Pss:"))
    except (OSError, StopIteration):
        return 0, 0
    return rss, pss


def memory(pids: dict[str, int]) -> dict[str, dict[str, float]]:
    out = {}
    for name, pid in pids.items():
        rss, pss = memory_kb(pid)
        out[name] = {"rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1)}
    out["total"] = {k: round(sum(v[k] for v in out.values()), 1) for k in ("rss_mb", "pss_mb")}
    return out


def first_answer(url: str, up: subprocess.Popen[bytes], deadline_s: float) -> tuple[float, str]:
    """When a chat completion first answered 200, and the model asked (the first /v1/models lists)."""
    model = None
    give_up_at = time.monotonic() + deadline_s
    with httpx.Client(timeout=2.0, trust_env=False) as client:
        while time.monotonic() < give_up_at:
            if up.poll() is not None:
                raise RuntimeError("aiub up exited")
            try:
                if model is None:
                    listed = client.get(url + "/v1/models")
                    if listed.status_code == 200 and listed.json()["data"]:
                        model = str(listed.json()["data"][0]["id"])
                if model is not None:
                    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4}
                    if client.post(url + "/v1/chat/completions", json=body).status_code == 200:
                        return time.monotonic(), model
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
    raise TimeoutError("no answer")


def load(url: str, model: str, pids: dict[str, int], conc: int, duration: float, stream: bool) -> dict[str, object]:
    argv = [sys.executable, str(HERE / "loadgen.py"), "--url", url, "--model", model, "-c", str(conc),
            "-d", str(duration), "--warmup", "1", "--marks",
            # the demo's response cache is on and the load repeats one request: skip the lookup;
            # the demo's simulators pace tokens (20 ms, 5 ms each): here they answer 16 at once
            "--extra", json.dumps({"cache": {"no-cache": True},
                                   "simulator": {"tokens": 16, "ttft_ms": 0, "itl_ms": 0}})]
    argv += ["--stream"] if stream else []
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    before = after = None
    result: dict[str, object] = {}
    for line in proc.stdout:
        if line.startswith("#start"):
            before = procstat.snapshot(pids)
        elif line.startswith("#end"):
            after = procstat.snapshot(pids)
        elif line.startswith("{"):
            result = json.loads(line)
    proc.wait()
    if before is None or after is None or not result.get("ok"):
        raise RuntimeError(f"load run failed: {result}")
    d = procstat.delta(before, after)
    ok = int(result["ok"])  # type: ignore[call-overload]
    ours = [n for n in pids]
    cpu_us = {n: round(d[n] / ok * 1e6) for n in ours if n in d}
    total = sum(cpu_us.values())
    elapsed = float(result["elapsed_s"])  # type: ignore[arg-type]
    other = d["_machine"] - sum(d[n] for n in ours if n in d) - float(result["client_cpu_s"])  # type: ignore[arg-type]
    return {"stream": stream, "conc": conc, "rps": result["rps"], "ok": ok, "errors": result["errors"],
            "latency_ms": result["latency_ms"], "ttft_ms": result.get("ttft_ms"),
            "cpu_us_per_request": cpu_us | {"total": total},
            "other_cores": round(other / elapsed, 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--up-args", default="", help="extra `aiub up` arguments, e.g. --combined")
    ap.add_argument("--config", default=str(REPO / "config"))
    ap.add_argument("--duration", type=float, default=8.0)
    ap.add_argument("--conc", type=int, default=16)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after the first answer before reading memory")
    ap.add_argument("--json", default=None, help="write the results here too")
    a = ap.parse_args(argv)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "AIUB_CONFIG", "REDIS_URL", "AIUB_MASTER_KEY")}
    with tempfile.TemporaryDirectory(prefix="aiub-footprint-") as tmp:
        cmd = [sys.executable, "-m", "cli", "up", "--demo", "--config", a.config, "--port", str(port),
               "--state-dir", tmp, *shlex.split(a.up_args)]
        log = open(Path(tmp) / "up.log", "wb")
        t0 = time.monotonic()
        up = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            t_first, model = first_answer(url, up, 60.0)
            out: dict[str, object] = {"command": " ".join(cmd[1:]), "start_s": round(t_first - t0, 2)}
            time.sleep(a.settle)
            pids = processes(up.pid)
            out["processes"] = len(pids)
            out["memory_after_start"] = memory(pids)
            out["load"] = [load(url, model, pids, a.conc, a.duration, stream) for stream in (False, True)]
            out["memory_after_load"] = memory(pids)
        finally:
            up.send_signal(signal.SIGTERM)
            try:
                up.wait(20)
            except subprocess.TimeoutExpired:
                up.kill()
            log.close()
    text = json.dumps(out, indent=1)
    print(text)
    if a.json:
        Path(a.json).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
