"""aiub across the hosts of a `Netlab`: hub hosts running `aiub hub`, GPU hosts running a simulator
and `aiub join`, with the credentials `aiub creds init` made (TLS on), as docs/multi-host.md says.

Every GPU host's provider serves `lab-model` (the backends are identical, so any may serve it),
and `only-<gpu>` is served by that GPU host with the next one as its fallback. Active probes are
off for GPU-host providers (the hub cannot reach a backend on a GPU host's loopback): their
health comes from outcomes and trials, and a host that vanishes leaves rotation when the hub's
NATS drops its connections (no worker left: the router skips it at once).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.netlab import SUBNET, Netlab
from tests.support.processes import wait_until

SIM_PORT = 8001
GATEWAY_PORT = 4000
DELAY_PORT = 4223  # each hub node's client port behind tests/support/delay_proxy.py


def _env() -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for name in ("NATS_URL", "AIUB_CONFIG", "AIUB_BUS_SECRET", "AIUB_MASTER_KEY", "SSL_CERT_FILE"):
        env.pop(name, None)
    return env


def aiub(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


class LabStack:
    def __init__(self, root: Path, hubs: int = 3, gpus: int = 2, sim_args: tuple[str, ...] = (),
                 max_concurrency: int = 16, runtime: dict[str, Any] | None = None) -> None:
        self.root = root
        self.net = Netlab(root)
        self.lab_dir = root / "lab"
        self.config_dir = root / "config"
        self.hub_names = [f"hub{i}" for i in range(1, hubs + 1)]
        self.gpu_names = [f"gpu{i}" for i in range(1, gpus + 1)]
        self.sim_args = sim_args
        self.models = ["lab-model", *(f"only-{g}" for g in self.gpu_names)]
        self.joins: dict[str, subprocess.Popen[bytes]] = {}
        self.delay_proxies: list[subprocess.Popen[bytes]] = []
        try:
            for i, name in enumerate(self.hub_names, start=1):
                self.net.add_host(name, i)
            for i, name in enumerate(self.gpu_names, start=11):
                self.net.add_host(name, i)
            subprocess.run(aiub("creds", "init", str(self.lab_dir),
                                *[f"--hub={h}={SUBNET}.{i}" for i, h in enumerate(self.hub_names, start=1)]),
                           check=True, capture_output=True, env=_env())
            self._write_config(max_concurrency, runtime or {})
        except BaseException:
            self.net.close()
            raise

    def _write_config(self, max_concurrency: int, runtime: dict[str, Any]) -> None:
        self.config_dir.mkdir(parents=True, exist_ok=True)
        providers = {g: {"type": "vllm", "base_url": f"http://127.0.0.1:{SIM_PORT}/v1",
                         "max_concurrency": max_concurrency, "health": {"enabled": False},
                         "models": {m: {} for m in self.models}}
                     for g in self.gpu_names}
        mappings: dict[str, Any] = {
            "load_balancing": {"lab-model": {"providers": self.gpu_names, "strategy": "least_loaded"}},
            "exact_matches": {f"only-{g}": {"provider": g} for g in self.gpu_names},
            "fallback_chains": {f"only-{g}": [g, self.gpu_names[(i + 1) % len(self.gpu_names)]]
                                for i, g in enumerate(self.gpu_names)},
        }
        (self.config_dir / "providers.yaml").write_text(yaml.safe_dump({"providers": providers}))
        (self.config_dir / "model-mappings.yaml").write_text(yaml.safe_dump(mappings))
        (self.config_dir / "aiub.yaml").write_text(yaml.safe_dump(runtime))

    # --- hosts -------------------------------------------------------------------------------

    def start_hub(self, name: str, services: str = "gateway,router,health") -> None:
        self.net.run(name, "hub", aiub("hub", "--lab", str(self.lab_dir), "--node", name, "--services", services,
                                       "--config", str(self.config_dir), "--state-dir", str(self.root / name),
                                       "--insecure-no-auth", "--port", str(GATEWAY_PORT)), _env())

    def start_gpu(self, name: str) -> None:
        self.net.run(name, "simulator", aiub("simulator", "--flavor", "openai", "--host", "0.0.0.0", "--port",
                                             str(SIM_PORT), "--models", ",".join(self.models), *self.sim_args), _env())
        self._join(name, self.lab_dir / "gpu")

    def _join(self, name: str, lab_dir: Path) -> None:
        index = self.gpu_names.index(name)
        self.joins[name] = self.net.run(name, "join", aiub(
            "join", "--lab", str(lab_dir), "--provider", name, "--config", str(self.config_dir), "--prefer",
            self.hub_names[index % len(self.hub_names)], "--state-dir", str(self.root / name)), _env())

    def delay_gpu(self, name: str, delay_ms: float) -> None:
        """`name`'s workers reach the hub through a proxy adding `delay_ms` each way (a round trip
        of twice that): every hub node gets tests/support/delay_proxy.py on DELAY_PORT in front of
        its client port, and the GPU host joins again with a lab.json naming that port. Where
        netem works, `net.netem` is the closer copy of a real link; this works on any kernel."""
        if not self.delay_proxies:
            for hub in self.hub_names:
                self.delay_proxies.append(self.net.run(hub, "delay-proxy", [
                    sys.executable, "-m", "tests.support.delay_proxy", "--listen", f"0.0.0.0:{DELAY_PORT}",
                    "--to", "127.0.0.1:4222", "--delay-ms", str(delay_ms)], _env()))
        delayed = self.lab_dir / "gpu-delayed"
        if not delayed.exists():
            shutil.copytree(self.lab_dir / "gpu", delayed)
            described = json.loads((delayed / "lab.json").read_text())
            (delayed / "lab.json").write_text(json.dumps({**described, "client_port": DELAY_PORT}))
        self.net.stop(name, self.joins[name])
        self._join(name, delayed)

    def undelay_gpu(self, name: str) -> None:
        """`name` joins again directly; the proxies stop."""
        self.net.stop(name, self.joins[name])
        self._join(name, self.lab_dir / "gpu")
        for proxy, hub in zip(self.delay_proxies, self.hub_names, strict=True):
            self.net.stop(hub, proxy)
        self.delay_proxies.clear()

    def start(self) -> LabStack:
        for hub in self.hub_names:
            self.start_hub(hub)
        for gpu in self.gpu_names:
            self.start_gpu(gpu)
        for hub in self.hub_names:
            wait_until(lambda h=hub: self.ready(h), 90, f"{hub}'s gateway to be ready", interval_s=0.2)  # type: ignore[misc]
        for gpu in self.gpu_names:
            wait_until(lambda g=gpu: self.answers(self.hub_names[0], f"only-{g}") == g, 60,  # type: ignore[misc]
                       f"{gpu} to serve through the hub", interval_s=0.2)
        return self

    def close(self) -> None:
        self.net.close()

    # --- reaching it -------------------------------------------------------------------------

    def gateway(self, hub: str) -> str:
        return f"http://{self.net.hosts[hub].address}:{GATEWAY_PORT}"

    def sim_url(self, gpu: str) -> str:
        return f"http://{self.net.hosts[gpu].address}:{SIM_PORT}"

    def ready(self, hub: str) -> bool:
        try:
            return httpx.get(self.gateway(hub) + "/ready", timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def answers(self, hub: str, model: str, timeout_s: float = 10) -> str | None:
        """The provider that served one request through `hub`'s gateway, or None if it failed."""
        try:
            r = httpx.post(self.gateway(hub) + "/v1/chat/completions", timeout=timeout_s, trust_env=False,
                           headers={"cache-control": "no-store"},
                           json={"model": model, "messages": [{"role": "user", "content": f"hi {time.time()}"}]})
        except httpx.HTTPError:
            return None
        return r.headers.get("x-aiub-provider") if r.status_code == 200 else None

    def sim_stats(self, gpu: str) -> dict[str, Any]:
        return dict(httpx.get(self.sim_url(gpu) + "/_sim/stats", timeout=2, trust_env=False).json())

    def log(self, host: str, name: str) -> str:
        path = self.root / f"{host}-{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""
