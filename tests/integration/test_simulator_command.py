"""`aiub simulator` as a command: a port it cannot have is said in one line, not a traceback."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_a_simulator_on_a_taken_port_says_so_and_exits_1() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        ran = subprocess.run([sys.executable, "-m", "cli", "simulator", "--flavor", "openai", "--port", str(port),
                              "--models", "m"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert ran.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in ran.stderr, ran.stderr
    assert "Traceback" not in ran.stderr
