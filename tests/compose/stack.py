"""compose.yaml run by podman-compose: one project, its containers, their health and their metrics.

podman-compose (pinned in the test extra) rather than the Docker CLI against podman's socket:
it is on PyPI, so the lock pins it and CI installs it like any test dependency; Docker's
compose plugin is a binary from outside the registries this project may use. Its limits with
Debian's podman 4.3, which this tier works within:
- `depends_on: {condition: service_healthy}` is ignored (podman < 4.6 has no healthy wait):
  services start together and wait for NATS themselves (reconnects, the restart policy);
- healthchecks run only when podman can reach systemd; without it the tier runs each one with
  `podman healthcheck run`, which is the same check and sets the same status;
- `down` removes only the first replica of a scaled service; `--remove-orphans` removes them all.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = "aiubtier"
SERVICES = ["nats", "redis", "simulator-ollama", "simulator-openai", "router", "health", "gateway",
            "worker-ollama", "worker-llama_cpp_python", "worker-llama_cpp_native", "worker-vllm"]
SECRETS = ["AIUB_MASTER_KEY", "AIUB_BUS_SECRET", "REDIS_PASSWORD", "GRAFANA_ADMIN_PASSWORD",
           *(f"NATS_{user}_PASSWORD" for user in ("GATEWAY", "ROUTER", "HEALTH", "WORKER", "CLIENT", "MONITOR"))]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def host_address() -> str:
    """An address of this host that containers reach it by (podman 4.3 has no `host-gateway`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # no packet is sent: this only picks the outgoing address
            return str(s.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class Stack:
    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.env = env  # podman's environment (CONTAINERS_CONF)
        self.settings = {name: secrets.token_hex(16) for name in SECRETS}
        demo = (ROOT / "deploy" / "demo.env").read_text().splitlines()
        self.settings.update(line.split("=", 1) for line in demo if "=" in line and not line.startswith("#"))
        self.port, self.nats_port = free_port(), free_port()
        self.settings.update(AIUB_PORT=str(self.port), AIUB_NATS_BIND=f"127.0.0.1:{self.nats_port}",
                             AIUB_HOST_GATEWAY=host_address())
        self.env_file = workdir / "compose.env"
        self.env_file.write_text("".join(f"{k}={v}\n" for k, v in self.settings.items()))
        self.log = workdir / "podman-compose.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def key(self) -> str:
        return self.settings["AIUB_MASTER_KEY"]

    def compose(self, *args: str, timeout: float = 600) -> None:
        command = [str(Path(sys.executable).with_name("podman-compose")), "--in-pod", "false", "-p", PROJECT,
                   "--env-file", str(self.env_file), "--profile", "demo", "-f", str(ROOT / "compose.yaml"), *args]
        with self.log.open("a") as log:
            log.write(f"$ {' '.join(command[1:])}\n")
            log.flush()
            done = subprocess.run(command, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                  timeout=timeout, check=False)
        if done.returncode != 0:
            raise AssertionError(f"podman-compose {' '.join(args)} exited {done.returncode}: see {self.log}")

    def podman(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            raise AssertionError(f"podman {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def containers(self, service: str | None = None) -> list[str]:
        filters = ["--filter", f"label=io.podman.compose.project={PROJECT}"]
        if service:
            filters += ["--filter", f"label=com.docker.compose.service={service}"]
        return sorted(self.podman("ps", "-a", *filters, "--format", "{{.Names}}").split())

    def inspect(self, container: str, field: str) -> str:
        return self.podman("inspect", container, "--format", f"{{{{{field}}}}}").strip()

    def wait_healthy(self, containers: Iterable[str], deadline_s: float = 180) -> None:
        """Every container running and passing its compose healthcheck (run here, as podman would)."""
        waiting = set(containers)
        give_up = time.monotonic() + deadline_s
        while waiting:
            for name in sorted(waiting):
                running = self.inspect(name, ".State.Status") == "running"
                if running and subprocess.run(["podman", "healthcheck", "run", name], env=self.env,
                                              capture_output=True, timeout=60).returncode == 0:
                    waiting.discard(name)
            if waiting and time.monotonic() > give_up:
                logs = {name: self.podman("logs", "--tail", "20", name, check=False) for name in waiting}
                raise AssertionError(f"not healthy after {deadline_s}s: {sorted(waiting)}\n{logs}")
            if waiting:
                time.sleep(1)

    def metrics(self, container: str) -> str:
        """The container's /metrics, read inside it (scalable services publish no port)."""
        read = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9464/metrics').read().decode())"
        return self.podman("exec", container, "python", "-c", read)

    def crash(self, container: str) -> int:
        """SIGKILL the service process (under the container's init); returns the restart count before."""
        before = int(self.inspect(container, ".RestartCount"))
        init = self.inspect(container, ".State.Pid")
        children = Path(f"/proc/{init}/task/{init}/children").read_text().split()
        assert children, f"{container}: its init has no child process"
        os.kill(int(children[0]), signal.SIGKILL)
        return before

    def wait_restarted(self, container: str, restarts_before: int, deadline_s: float = 60) -> None:
        give_up = time.monotonic() + deadline_s
        while int(self.inspect(container, ".RestartCount")) <= restarts_before:
            assert time.monotonic() < give_up, f"{container} was not restarted"
            time.sleep(0.5)
        self.wait_healthy([container], deadline_s)


def project_leftovers(env: dict[str, str]) -> dict[str, list[str]]:
    def names(*args: str) -> list[str]:
        done = subprocess.run(["podman", *args], env=env, capture_output=True, text=True, check=True)
        return [n for n in done.stdout.split() if n.startswith(PROJECT)]
    return {"containers": names("ps", "-a", "--format", "{{.Names}}"),
            "networks": names("network", "ls", "--format", "{{.Name}}"),
            "volumes": names("volume", "ls", "--format", "{{.Name}}")}
