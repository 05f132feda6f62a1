"""A lab of hosts on one machine: a network namespace per host, joined by a bridge.

Each host gets its own network stack (its own loopback, its own ports, one interface `eth0`
with an address on 10.231.77.0/24) through a veth pair whose other end sits on a bridge in the
root namespace, which holds 10.231.77.254 so the test process reaches every host directly.
Faults are made the way a network makes them:

- `partition(host)`: the host's cable is pulled (its bridge port goes down; no FIN, no RST);
- `netem(host, delay_ms, loss)`: `tc netem` on the host's interface, so every packet the host
  sends waits (a 20 ms delay on a GPU host is a 20 ms round trip to the hub); where the kernel
  has no netem, tests/support/delay_proxy.py delays a chosen TCP path instead (LabStack.delay_gpu);
- `kill(host)`: every process started in the host dies (SIGKILL), as in a power cut.

Processes run as `ip netns exec <ns> <argv>`, each in its own process group, and are killed by
their group at `close()`, which also deletes the namespaces and the bridge, even after a
failed test. Namespaces left by a run that was killed (same prefix, dead owner pid) are removed
when the next lab is made.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

PREFIX = "aiubl"
SUBNET = "10.231.77"


def unavailable() -> str | None:
    """Why no lab can be made here, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            return f"`{tool}` (iproute2) is not installed"
    probe = f"{PREFIX}probe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "delete", probe], capture_output=True)
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")
    return result


class NetemUnavailable(RuntimeError):
    """`tc netem` is refused here: the kernel was built without the netem qdisc."""


@dataclass
class Host:
    name: str
    ns: str
    address: str
    port: str  # its veth end on the bridge, in the root namespace
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)


class Netlab:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.tag = f"{PREFIX}{os.getpid() % 100000}"
        self.bridge = f"{self.tag}br"
        self.hosts: dict[str, Host] = {}
        _remove_stale()
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{SUBNET}.254/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def add_host(self, name: str, number: int) -> Host:
        ns, port = f"{self.tag}-{name}", f"{self.tag}{name}"[-15:]
        _ip("netns", "add", ns)
        _ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", port, "master", self.bridge, "up")
        _ip("-n", ns, "addr", "add", f"{SUBNET}.{number}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        host = Host(name, ns, f"{SUBNET}.{number}", port)
        self.hosts[name] = host
        return host

    def run(self, host: str, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        h = self.hosts[host]
        log = (self.root / f"{host}-{name}.log").open("ab")
        process = subprocess.Popen(["ip", "netns", "exec", h.ns, *argv], env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        h.processes.append(process)
        return process

    def partition(self, host: str) -> None:
        _ip("link", "set", self.hosts[host].port, "down")

    def heal(self, host: str) -> None:
        _ip("link", "set", self.hosts[host].port, "up")

    def netem(self, host: str, delay_ms: float = 0, loss_pct: float = 0) -> None:
        h = self.hosts[host]
        args = ["tc", "qdisc", "replace", "dev", "eth0", "root", "netem", "delay", f"{delay_ms}ms"]
        if loss_pct:
            args += ["loss", f"{loss_pct}%"]
        done = subprocess.run(["ip", "netns", "exec", h.ns, *args], capture_output=True, text=True)
        if done.returncode != 0:
            raise NetemUnavailable(f"tc netem on {host}: {done.stderr.strip()} (this kernel has no sch_netem?)")

    def stop(self, host: str, process: subprocess.Popen[bytes]) -> None:
        """One process of the host (and its group) dies: SIGTERM, SIGKILL after 10 s."""
        _kill_group(process, signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            _kill_group(process, signal.SIGKILL)
            process.wait()
        self.hosts[host].processes.remove(process)

    def kill(self, host: str) -> None:
        for process in self.hosts[host].processes:
            _kill_group(process, signal.SIGKILL)
        self.hosts[host].processes.clear()

    def pids(self, host: str, command_part: str) -> list[int]:
        """Processes in the host's namespace whose command line contains `command_part`."""
        listed = subprocess.run(["ip", "netns", "pids", self.hosts[host].ns], capture_output=True, text=True)
        found = []
        for pid in listed.stdout.split():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if command_part in cmdline:
                found.append(int(pid))
        return found

    def close(self) -> None:
        for host in self.hosts.values():
            for process in host.processes:
                _kill_group(process, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for host in self.hosts.values():
            for process in host.processes:
                try:
                    process.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _kill_group(process, signal.SIGKILL)
                    process.wait()
            for pid in subprocess.run(["ip", "netns", "pids", host.ns], capture_output=True, text=True).stdout.split():
                try:  # anything that escaped its group still dies with the host
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _ip("netns", "delete", host.ns, check=False)
            _ip("link", "delete", host.port, check=False)
        _ip("link", "delete", self.bridge, check=False)

    def __enter__(self) -> Netlab:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _kill_group(process: subprocess.Popen[bytes], sig: int) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass


def _remove_stale() -> None:
    """Namespaces and bridges of an earlier lab whose owner (the pid in its tag) is dead."""
    names = _ip("netns", "list", check=False).stdout.split()
    links = _ip("-o", "link", "show", check=False).stdout
    for tag in {n.split("-")[0] for n in names if n.startswith(PREFIX)} | {
            w.split("br")[0] for w in links.replace(":", " ").replace("@", " ").split()
            if w.startswith(PREFIX) and w.endswith("br")}:
        pid = tag.removeprefix(PREFIX)
        if pid.isdigit() and int(pid) != os.getpid() % 100000 and not Path(f"/proc/{pid}").exists():
            for n in names:
                if n.startswith(f"{tag}-"):
                    for p in subprocess.run(["ip", "netns", "pids", n], capture_output=True, text=True).stdout.split():
                        try:
                            os.kill(int(p), signal.SIGKILL)
                        except (ProcessLookupError, ValueError):
                            pass
                    _ip("netns", "delete", n, check=False)
            _ip("link", "delete", f"{tag}br", check=False)
