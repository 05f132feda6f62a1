"""Real aiub services as child processes, for tests that cross process boundaries.

Each test module gets its own NATS server and its own config directory, so stacks never
share subjects. Readiness is waited on with a deadline, never a sleep.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import yaml

from shared.embedded_nats import free_port, wait_for_port
from shared.processes import die_with_parent, stop_process


def wait_until(condition: Callable[[], bool], deadline_s: float, what: str, interval_s: float = 0.02) -> None:
    give_up_at = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > give_up_at:
            raise TimeoutError(f"timed out after {deadline_s}s waiting for {what}")
        time.sleep(interval_s)


def served(url: str, model: str, key: str | None = None) -> bool:
    """One request answered end to end, leaving the cache untouched (`no-store`)."""
    headers = {"cache-control": "no-store", **({"authorization": f"Bearer {key}"} if key else {})}
    try:
        response = httpx.post(url + "/v1/chat/completions", headers=headers, trust_env=False, timeout=10,
                              json={"model": model, "messages": [{"role": "user", "content": "probe"}]})
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def wait_served(url: str, model: str, key: str | None = None, deadline_s: float = 30) -> None:
    """Until `model` is served through the gateway at `url`: the gateway being ready says nothing
    of whether the router and workers have subscribed yet."""
    wait_until(lambda: served(url, model, key), deadline_s, f"{model} to be served end to end", interval_s=0.1)


async def wait_until_async(condition: Callable[[], bool], deadline_s: float, what: str,
                           interval_s: float = 0.01) -> None:
    """`wait_until` for async tests: polls without blocking the loop that runs the code under test."""
    give_up_at = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > give_up_at:
            raise TimeoutError(f"timed out after {deadline_s}s waiting for {what}")
        await asyncio.sleep(interval_s)


class Process:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.popen = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                          stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.alive:
            self.popen.send_signal(sig)
        self.popen.wait(10)

    def stop(self) -> None:
        stop_process(self.popen, 10)


class Simulator:
    def __init__(self, proc: Process, port: int) -> None:
        self.proc = proc
        self.port = port
        self.url = f"http://127.0.0.1:{port}"

    def stats(self) -> dict[str, Any]:
        return httpx.get(self.url + "/_sim/stats", timeout=2, trust_env=False).json()

    def knobs(self, **changes: Any) -> dict[str, Any]:
        return httpx.post(self.url + "/_sim/knobs", json=changes, timeout=2, trust_env=False).json()


class Stack:
    """A config directory plus whichever services a test starts against one NATS server."""

    # What a test module's fixture starts and its tests reach for; each is set by the fixture that
    # needs it (reading one that was never set is an AttributeError, as a typo would be).
    sim: Simulator
    sims: dict[str, Simulator]
    openai_sim: Simulator
    ollama_sim: Simulator
    router: Process
    victim_worker: Process
    state_dir: Path
    runtime: dict[str, Any]
    metrics_port: int
    metrics_ports: list[int]

    def __init__(self, root: Path, nats_url: str) -> None:
        self.root = root
        self.nats_url = nats_url
        self.config_dir = root / "config"
        self.config_dir.mkdir(parents=True, exist_ok=True)
        self.processes: list[Process] = []
        self.gateway_port: int | None = None
        self.env = {**os.environ, "NATS_URL": nats_url, "PYTHONUNBUFFERED": "1"}
        self.env.pop("AIUB_CONFIG", None)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def write_config(self, providers: dict[str, Any], mappings: dict[str, Any],
                     runtime: dict[str, Any] | None = None) -> None:
        (self.config_dir / "providers.yaml").write_text(yaml.safe_dump({"providers": providers}))
        (self.config_dir / "model-mappings.yaml").write_text(yaml.safe_dump(mappings))
        (self.config_dir / "aiub.yaml").write_text(yaml.safe_dump(runtime or {}))

    def spawn(self, name: str, *args: str) -> Process:
        log_path = self.root / f"{name}-{len(self.processes)}.log"
        proc = Process(name, [sys.executable, "-m", "cli", *args], self.env, log_path)
        self.processes.append(proc)
        return proc

    def simulator(self, flavor: str, models: list[str], *extra: str) -> Simulator:
        port = free_port()
        proc = self.spawn(f"simulator-{flavor}", "simulator", "--flavor", flavor, "--port", str(port),
                          "--models", ",".join(models), *extra)
        wait_for_port("127.0.0.1", port, 20, proc.popen)
        return Simulator(proc, port)

    def service(self, name: str, *args: str) -> Process:
        return self.spawn(name, name, "--config", str(self.config_dir), *args)

    def worker(self, *providers: str) -> Process:
        return self.spawn(f"worker-{'-'.join(providers)}", "worker", "--config", str(self.config_dir),
                          "--provider", *providers)

    def gateway(self, *args: str) -> Process:
        self.gateway_port = free_port()
        proc = self.spawn("gateway", "gateway", "--config", str(self.config_dir), "--port", str(self.gateway_port),
                          *args)
        wait_until(lambda: self._ready(proc), 30, "the gateway to be ready")
        return proc

    def wait_serving(self, model: str, key: str | None = None, deadline_s: float = 30) -> None:
        wait_served(self.gateway_url, model, key, deadline_s)

    def _ready(self, proc: Process) -> bool:
        if not proc.alive:
            raise RuntimeError(f"gateway exited:\n{proc.log()[-3000:]}")
        try:
            return httpx.get(self.gateway_url + "/ready", timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.log()[-4000:]}" for p in self.processes)

    def stop(self) -> None:
        for proc in reversed(self.processes):
            proc.stop()
