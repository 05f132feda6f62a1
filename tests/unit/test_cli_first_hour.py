"""What a newcomer reads from the `aiub` command: help that says what happens, auth said plainly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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


def _create_key(tmp_path: Path, master_key: str | None, *options: str,
                state_dir_option: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("AIUB_MASTER_KEY", "REDIS_URL", "AIUB_STATE_DIR")}
    if master_key is not None:
        env["AIUB_MASTER_KEY"] = master_key
    where = ["--state-dir", str(tmp_path)] if state_dir_option else []
    if not state_dir_option:
        env["AIUB_STATE_DIR"] = str(tmp_path)
    return subprocess.run([sys.executable, "-m", "cli", "keys", "--config", str(ROOT / "config"), *where,
                           "create", "--name", "n", *options],
                          env=env, capture_output=True, text=True, check=False, timeout=60, cwd=tmp_path.parent)


@pytest.mark.parametrize(("options", "says"), [
    (["--models", ""], "--models names no model"),  # an empty variable must not make a key for every model
    (["--models", ",,"], "--models names no model"),
    (["--budget-cost-day", "nan"], "--budget-cost-day must be a positive number"),
    (["--budget-cost-month", "inf"], "--budget-cost-month must be a positive number"),
    (["--expires", "0d"], "no time at all"),
    (["--expires", "99999999d"], "past the year 9999"),  # it broke `aiub keys list` for every key
])
def test_a_key_that_would_mean_something_else_is_refused(tmp_path: Path, options: list[str], says: str) -> None:
    created = _create_key(tmp_path, None, *options)
    assert created.returncode == 2 and says in created.stderr, created.stderr
    assert not (tmp_path / "keys.json").exists()


def test_a_revoked_key_is_not_updated(tmp_path: Path) -> None:
    created = _create_key(tmp_path, None, "--json")
    key_id = json.loads(created.stdout)["id"]

    def keys(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "cli", "keys", "--config", str(ROOT / "config"),
                               "--state-dir", str(tmp_path), *args], capture_output=True, text=True, check=False,
                              timeout=60, env={k: v for k, v in os.environ.items() if k != "REDIS_URL"})

    assert keys("revoke", key_id).returncode == 0
    updated = keys("update", key_id, "--rpm", "5")
    assert updated.returncode == 1 and "is revoked" in updated.stderr, updated.stderr


def test_the_key_file_goes_where_aiub_state_dir_says(tmp_path: Path) -> None:
    created = _create_key(tmp_path, None, state_dir_option=False)
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "keys.json").is_file() and not (tmp_path.parent / ".aiub").exists()


def test_creating_a_key_while_auth_is_off_says_it_is_not_enforced_and_how_to_enforce_it(tmp_path: Path) -> None:
    created = _create_key(tmp_path, None)
    assert created.returncode == 0, created.stderr
    assert created.stdout.startswith("sk-aiub-")
    assert "not enforced" in created.stderr and "AIUB_MASTER_KEY" in created.stderr


def test_creating_a_key_while_auth_is_on_says_nothing_about_enforcement(tmp_path: Path) -> None:
    created = _create_key(tmp_path, "m" * 24)
    assert created.returncode == 0, created.stderr
    assert "not enforced" not in created.stderr
