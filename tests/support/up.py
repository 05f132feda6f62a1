"""`aiub up` as a user runs it, as a child of the test: what it prints goes to a file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from shared.embedded_nats import free_port
from shared.processes import die_with_parent, stop_process
from tests.support.processes import wait_until


class AiubUp:
    def __init__(self, root: Path, config_dir: Path, *args: str, embedded_nats: bool = False,
                 extra_env: Mapping[str, str] | None = None) -> None:
        """`embedded_nats`: no `--nats` and no `$NATS_URL`, so `aiub up` starts its own server;
        `extra_env`: variables set for it besides the test process's own."""
        self.port = free_port()
        self.state_dir = root / "state"
        self.out = root / "aiub-up.out"
        env = dict(os.environ)
        if embedded_nats:
            env.pop("NATS_URL", None)
        env.pop("AIUB_CONFIG", None)
        env.update(extra_env or {})
        with self.out.open("wb") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "cli", "up", "--config", str(config_dir), "--port", str(self.port),
                 "--state-dir", str(self.state_dir), *args],
                stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, preexec_fn=die_with_parent)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_up(self, deadline_s: float = 60) -> None:
        def started() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"aiub up exited with {self.process.returncode}:\n{self.output()[-3000:]}")
            return "Ctrl-C stops everything." in self.output()
        wait_until(started, deadline_s, "aiub up to start", interval_s=0.1)

    def stack(self) -> dict[str, object]:
        """What `aiub up` wrote to `<state-dir>/stack.json`."""
        return dict(json.loads((self.state_dir / "stack.json").read_text()))

    def child_pids(self, command: str) -> list[int]:
        """Pids of this `aiub up`'s children whose command name is `command` (Linux /proc)."""
        pids = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)
                name = fields[0].split("(", 1)[1]
                parent = int(fields[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == self.process.pid and name == command:
                pids.append(int(stat.parent.name))
        return pids

    def stop(self) -> None:
        stop_process(self.process, 20, signal.SIGINT)
