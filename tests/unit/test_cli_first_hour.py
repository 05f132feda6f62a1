"""What a newcomer reads from the `aiub` command: help that says what happens, auth said plainly."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from cli.main import build_parser
from cli.up.stack import auth_summary

ROOT = Path(__file__).resolve().parents[2]


def _help(command: str) -> str:
    subparsers = build_parser()._subparsers
    assert subparsers is not None
    (action,) = subparsers._group_actions
    return " ".join(action.choices[command].format_help().split())  # type: ignore[attr-defined]


def test_up_help_says_it_embeds_its_own_nats_rather_than_the_default_port() -> None:
    text = _help("up")
    assert "its own nats-server on a free loopback port" in text
    assert "nats://127.0.0.1:4222" not in text
    assert "nats://127.0.0.1:4222" in _help("router")


def test_up_says_whether_auth_is_on() -> None:
    assert auth_summary(False, "AIUB_MASTER_KEY").startswith("auth: off")
    assert "set $AIUB_MASTER_KEY" in auth_summary(False, "AIUB_MASTER_KEY")
    assert auth_summary(True, "AIUB_MASTER_KEY").startswith("auth: on")


def _create_key(tmp_path: Path, master_key: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AIUB_MASTER_KEY", "REDIS_URL")}
    if master_key is not None:
        env["AIUB_MASTER_KEY"] = master_key
    return subprocess.run([sys.executable, "-m", "cli", "keys", "--config", str(ROOT / "config"),
                           "--state-dir", str(tmp_path), "create", "--name", "n"],
                          env=env, capture_output=True, text=True, check=False, timeout=60)


def test_creating_a_key_while_auth_is_off_says_it_is_not_enforced_and_how_to_enforce_it(tmp_path: Path) -> None:
    created = _create_key(tmp_path, None)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("sk-aiub-")
    assert "not enforced" in created.stderr and "AIUB_MASTER_KEY" in created.stderr


def test_creating_a_key_while_auth_is_on_says_nothing_about_enforcement(tmp_path: Path) -> None:
    created = _create_key(tmp_path, "m" * 24)
    assert created.returncode == 0, created.stderr
    assert "not enforced" not in created.stderr
