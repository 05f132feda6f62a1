"""A bus that is not there, or cannot carry what is asked, gets a prompt answer that says so:
`aiub config` and a gateway's start no longer wait on nats-py's "max_reconnect_attempts=0" (which
it reads as forever), a revision larger than one NATS message is refused before anything is
published, and a NATS URL that does not parse is reported like an unreachable one."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from services.gateway.main import bucket_config
from shared import bus, subjects
from shared.config import load_config

ROOT = Path(__file__).resolve().parents[2]
DEAD = "nats://127.0.0.1:1"


def aiub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=ROOT, capture_output=True, text=True, timeout=30)


def test_config_commands_give_up_on_a_dead_bus_at_once() -> None:
    started = time.monotonic()
    ran = aiub("config", "--nats", DEAD, "history")
    assert ran.returncode == 2, ran.stdout + ran.stderr
    assert f"cannot reach NATS at {DEAD}" in ran.stderr
    assert time.monotonic() - started < 15


def test_a_gateway_starting_without_its_bus_runs_its_files() -> None:
    config = load_config(ROOT / "config")
    assert asyncio.run(asyncio.wait_for(bucket_config(config, DEAD), 10)) == (config, 0)


def test_a_revision_too_large_for_one_message_is_refused(nats_url: str, tmp_path: Path) -> None:
    for name in ("providers.yaml", "aiub.yaml"):
        (tmp_path / name).write_text((ROOT / "config" / name).read_text())
    padding = ("# " + "x" * 78 + "\n") * 110_000  # 8.8 MB of comments: valid, and past 8 MB max_payload
    (tmp_path / "model-mappings.yaml").write_text((ROOT / "config" / "model-mappings.yaml").read_text() + padding)
    ran = aiub("config", "--nats", nats_url, "push", str(tmp_path))
    assert ran.returncode == 1, ran.stdout + ran.stderr
    assert "do not fit one message on this bus" in ran.stdout and "Traceback" not in ran.stderr


def test_a_url_that_does_not_parse_is_reported_not_raised() -> None:
    assert bus.inbox_prefix_for("http://[::1") == subjects.inbox_prefix(None)
    ran = aiub("status", "--nats", "http://[::1")
    assert ran.returncode != 0 and "cannot reach NATS at http://[::1" in ran.stderr, ran.stderr
