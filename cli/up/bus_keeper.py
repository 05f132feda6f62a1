"""Keeps `aiub up`'s embedded NATS running: the shell that carries out `bus_restarts.decide`.

A restart reuses the port and the JetStream store directory: the services' clients reconnect
to the address they know (they retry forever, `shared/bus.py`), and the health bucket, with
every provider state in it, survives. When the rules say give up, `tick` raises `BusLost`
and `aiub up` stops the stack and exits non-zero.
"""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from cli.up.bus_restarts import (
    Event,
    Exited,
    GiveUp,
    Kill,
    Lost,
    Policy,
    ProbeMissed,
    ProbePassed,
    Recovered,
    Start,
    Started,
    StartFailed,
    State,
    Tick,
    decide,
)
from shared.embedded_nats import EmbeddedNats


class BusLost(Exception):
    """The embedded NATS is gone and the restart rules gave up on it."""


class BusKeeper:
    def __init__(self, server: EmbeddedNats, policy: Policy | None = None,
                 clock: Callable[[], float] = time.monotonic, probe_every_s: float = 2.0,
                 probe_timeout_s: float = 1.0, say: Callable[[str], None] = print) -> None:
        self.server = server
        self.policy = policy or Policy()
        self.clock = clock
        self.probe_every_s = probe_every_s
        self.probe_timeout_s = probe_timeout_s
        self.say = say
        self.state = State(started_at=clock())
        self._next_probe = clock() + probe_every_s

    def tick(self) -> None:
        """Look at the server once; restart it when due. Raises `BusLost` when giving up."""
        now = self.clock()
        self._apply(self._observe(now), now)

    def _observe(self, now: float) -> Event:
        if self.state.phase != "up":
            return Tick()
        process = self.server.process
        if process is None or process.poll() is not None:
            return Exited(process.returncode if process else None)
        if now < self._next_probe:
            return Tick()
        self._next_probe = now + self.probe_every_s
        return ProbePassed() if says_hello(self.server.port, self.probe_timeout_s) else ProbeMissed()

    def _apply(self, event: Event, now: float) -> None:
        self.state, effects = decide(self.policy, self.state, event, now)
        for effect in effects:
            match effect:
                case Kill():
                    if self.server.process is not None:
                        self.server.process.send_signal(signal.SIGKILL)
                        self.server.process.wait()
                case Lost(reason, retry_in_s):
                    self.say(f"  nats-server is down ({reason}); restarting it on {self.server.url} "
                             f"in {retry_in_s:g}s")
                case Start():
                    outcome = self._start()
                    self._apply(outcome, self.clock())
                case Recovered(down_for_s):
                    self._next_probe = self.clock() + self.probe_every_s
                    pid = self.server.process.pid if self.server.process else "-"
                    self.say(f"  nats-server is back on {self.server.url} (pid {pid}) after {down_for_s:.1f}s; "
                             f"the services reconnect on their own")
                case GiveUp(reason):
                    raise BusLost(reason)

    def _start(self) -> Started | StartFailed:
        if not port_free(self.server.port):
            return StartFailed(f"127.0.0.1:{self.server.port} is taken by another process")
        try:
            self.server.start(deadline_s=10.0)
        except (RuntimeError, TimeoutError, OSError) as e:
            self.server.stop()
            last = _last_line(self.server.state_dir / "nats-server.log")
            return StartFailed(f"restart failed: {e}" + (f" (nats-server.log: {last})" if last else ""))
        return Started()


def says_hello(port: int, timeout_s: float) -> bool:
    """A live nats-server sends its INFO line as soon as a client connects; a frozen one does not."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as conn:
            conn.settimeout(timeout_s)
            return conn.recv(4).startswith(b"INFO")
    except OSError:
        return False


def port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nats-server binds; TIME_WAIT is no obstacle
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1] if lines else ""
