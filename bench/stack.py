"""aiub in front of one backend, for benchmarks: a generated config directory, then `aiub up`.

One provider (`bench`, type openai_compatible) serves model `bench-model` by exact match, with a
concurrency cap high enough that the worker never answers Busy under the benchmark's load.
Used two ways:

  python bench/stack.py [--backend URL] [--port 4000]   # foreground; what compare.sh starts
  from bench.stack import start                         # run.py: a handle with the service pids

The foreground form runs until SIGTERM/SIGINT (compare.sh kills its process group); `aiub up`
stops its children when it stops, and each child dies with it (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from shared.processes import die_with_parent  # noqa: E402

MODEL = "bench-model"
PROVIDER = "bench"


def write_config(directory: Path, backend_url: str, *, provider_type: str = "openai_compatible",
                 max_concurrency: int = 256, queue_size: int = 256, cache: bool = False) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    providers = {PROVIDER: {
        "type": provider_type, "base_url": backend_url, "max_concurrency": max_concurrency,
        "queue_size": queue_size, "models": {MODEL: {}},
    }}
    (directory / "providers.yaml").write_text(yaml.safe_dump({"providers": providers}, sort_keys=False))
    (directory / "model-mappings.yaml").write_text(
        yaml.safe_dump({"exact_matches": {MODEL: {"provider": PROVIDER}}}, sort_keys=False))
    # The load repeats one request: with the response cache on, aiub would measure its cache, not its path.
    (directory / "aiub.yaml").write_text(yaml.safe_dump({"cache": {"enabled": cache}}))
    return directory


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def service_name(argv: list[str]) -> str | None:
    """`python -m cli worker --provider bench ...` -> "worker"; nats-server -> "nats"."""
    if argv and argv[0].endswith("nats-server"):
        return "nats"
    if "cli" in argv:
        rest = argv[argv.index("cli") + 1:]
        return rest[0] if rest else None
    return None


@dataclass
class RunningStack:
    process: subprocess.Popen[bytes]
    port: int
    state_dir: Path
    log_path: Path
    _tmp: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> dict[str, int]:
        """Service name -> pid for every direct child of `aiub up` (gateway, router, health, worker, nats)."""
        found: dict[str, int] = {}
        for pid in _children(self.process.pid):
            name = service_name(_cmdline(pid))
            if name is not None:
                found[name if name not in found else f"{name}-{pid}"] = pid
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._tmp is not None:
            self._tmp.cleanup()


def _ready(url: str) -> bool:
    try:
        return httpx.get(url + "/ready", timeout=1.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def start(backend_url: str, port: int, *, workdir: Path | None = None, provider_type: str = "openai_compatible",
          max_concurrency: int = 256, log_level: str = "INFO", env: dict[str, str] | None = None,
          cache: bool = False, deadline_s: float = 60.0, combined: bool = False) -> RunningStack:
    tmp = None
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="aiub-bench-")
        workdir = Path(tmp.name)
    config_dir = write_config(workdir / "config", backend_url, provider_type=provider_type,
                              max_concurrency=max_concurrency, cache=cache)
    state_dir = workdir / "state"
    state_dir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "aiub-up.log"
    child_env = {**os.environ, **(env or {})}
    # Always a private embedded NATS, in-process cache and limits, no auth: never someone else's services.
    for name in ("NATS_URL", "AIUB_CONFIG", "REDIS_URL", "AIUB_MASTER_KEY"):
        child_env.pop(name, None)
    log = log_path.open("ab")
    proc = subprocess.Popen([sys.executable, "-m", "cli", "up", "--config", str(config_dir), "--port", str(port),
                             "--state-dir", str(state_dir), "--log-level", log_level]
                            + (["--combined"] if combined else []),
                            cwd=REPO, env=child_env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            preexec_fn=die_with_parent)
    log.close()
    stack = RunningStack(proc, port, state_dir, log_path, tmp)
    give_up_at = time.monotonic() + deadline_s
    try:
        services = {"gateway", "services"} if combined else {"gateway", "router", "worker"}
        while not (_ready(stack.url) and services <= stack.pids().keys()):
            if proc.poll() is not None or time.monotonic() > give_up_at:
                raise RuntimeError(f"aiub up did not become ready on :{port}; its log:\n"
                                   + log_path.read_text(errors="replace")[-3000:])
            time.sleep(0.1)
    except BaseException:
        stack.stop()
        raise
    return stack


def _port_taken(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--backend", default=os.environ.get("STUB_URL"),
                    help="backend base URL, e.g. http://127.0.0.1:8001/v1 (default: $STUB_URL)")
    ap.add_argument("--port", type=int, default=4000)
    ap.add_argument("--type", default="openai_compatible", choices=("openai_compatible", "vllm"))
    ap.add_argument("--max-concurrency", type=int, default=256)
    ap.add_argument("--log-level", default="INFO")
    ap.add_argument("--cache", action="store_true", help="leave the response cache on (off by default)")
    ap.add_argument("--combined", action="store_true",
                    help="aiub up --combined: router, health and worker in one process")
    ap.add_argument("--workdir", default=None, help="keep config, state and logs here (default: a temp dir)")
    a = ap.parse_args(argv)
    if not a.backend:
        ap.error("--backend or $STUB_URL is required")
    # SystemExit unwinds through start() or the loop below, and both stop `aiub up` on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if _port_taken(a.port):
        print(f"port {a.port} is already in use; pick another with --port", file=sys.stderr)
        return 1
    stack = start(a.backend, a.port, workdir=Path(a.workdir) if a.workdir else None, provider_type=a.type,
                  max_concurrency=a.max_concurrency, log_level=a.log_level, cache=a.cache,
                  combined=a.combined)
    try:
        print(f"aiub up on {stack.url}/v1 -> {a.backend}; pids {stack.pids()}; log {stack.log_path}", flush=True)
        while True:
            time.sleep(0.5)
            if stack.process.poll() is not None:
                print(f"aiub up exited with {stack.process.returncode}", file=sys.stderr)
                return 1
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main())
