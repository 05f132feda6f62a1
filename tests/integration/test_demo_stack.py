"""`aiub up --demo` as a newcomer meets it from another directory: `aiub status` finds the
running stack through the state dir `aiub up` recorded (cli/stack_dir.py), and says "no stack
found" when there is none instead of asking a default NATS some other server may answer.
`/v1/models` offers only models that can answer, and one of them embeds. Its services load only
what they use: no aiohttp outside the workers (shared/nats_library.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.up import AiubUp

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def state_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's own $XDG_STATE_HOME, so only its stack is "the running one"."""
    return tmp_path_factory.mktemp("xdg-state")


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, state_home: Path) -> Iterator[AiubUp]:
    up = AiubUp(tmp_path_factory.mktemp("demo"), ROOT / "config", "--demo", embedded_nats=True,
                extra_env={"XDG_STATE_HOME": str(state_home)})
    try:
        up.wait_up()
        yield up
    finally:
        up.stop()


def aiub(*args: str, cwd: Path, state_home: Path) -> subprocess.CompletedProcess[str]:
    """`aiub` as a user elsewhere runs it: no $NATS_URL, no $AIUB_STATE_DIR, no ./.aiub."""
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "AIUB_STATE_DIR", "AIUB_CONFIG")}
    env.update(XDG_STATE_HOME=str(state_home), PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "cli", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60, check=False)


def test_status_from_another_directory_finds_the_running_stack(demo: AiubUp, state_home: Path,
                                                               tmp_path: Path) -> None:
    assert (state_home / "aiub" / "current").read_text().strip() == str(demo.state_dir.resolve())
    ran = aiub("status", "--json", cwd=tmp_path, state_home=state_home)
    assert ran.returncode == 0, ran.stderr
    assert f'"nats_url": "{demo.stack()["nats_url"]}"' in ran.stdout


def test_with_no_stack_status_and_dashboard_say_so(tmp_path: Path) -> None:
    for command in ("status", "dashboard"):
        ran = aiub(command, cwd=tmp_path, state_home=tmp_path / "nothing-recorded")
        assert ran.returncode == 1, (command, ran.stdout, ran.stderr)
        assert f"aiub {command}: no stack found" in ran.stderr
        assert "4222" not in ran.stderr + ran.stdout


def test_models_lists_only_what_answers_and_the_demo_embeds(demo: AiubUp) -> None:
    listed = {m["id"] for m in httpx.get(demo.url + "/v1/models", timeout=10, trust_env=False).json()["data"]}
    assert {"llama3.1:8b", "qwen-coder", "nomic-embed-text"} <= listed
    assert not listed & {"gpt-4o-mini", "claude-sonnet-4", "kimi-k2:1t-cloud", "text-embedding-3-small"}
    embedded = httpx.post(demo.url + "/v1/embeddings", timeout=10, trust_env=False,
                          json={"model": "nomic-embed-text", "input": ["hello", "world"]})
    assert embedded.status_code == 200, embedded.text
    data = embedded.json()["data"]
    assert [d["index"] for d in data] == [0, 1] and all(d["embedding"] for d in data)
    assert embedded.json()["model"] == "nomic-embed-text"


def test_up_publishes_its_config_as_the_first_revision(demo: AiubUp, state_home: Path, tmp_path: Path) -> None:
    ran = aiub("config", "history", "--json", cwd=tmp_path, state_home=state_home)
    assert ran.returncode == 0, ran.stderr
    assert [(r["revision"], r["source"], r["current"]) for r in json.loads(ran.stdout)] == [(1, "aiub up", True)]


def libraries_mapped(pid: int) -> set[str]:
    """The site-packages distributions whose compiled extensions a running process has mapped."""
    found = set()
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        path = line.split()[-1]
        if "/site-packages/" in path and path.endswith(".so"):
            found.add(path.split("/site-packages/", 1)[1].split("/", 1)[0])
    return found


def test_only_the_workers_load_aiohttp(demo: AiubUp) -> None:
    services: dict[str, int] = {}
    for child in Path(f"/proc/{demo.process.pid}/task/{demo.process.pid}/children").read_text().split():
        argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        if b"cli" in argv and len(argv) > argv.index(b"cli") + 1:
            services.setdefault(argv[argv.index(b"cli") + 1].decode(), int(child))
    assert {"gateway", "router", "health", "worker"} <= services.keys(), services
    assert "aiohttp" in libraries_mapped(services["worker"])  # the backend client: the check can see it
    for name in ("gateway", "router", "health"):
        assert "aiohttp" not in libraries_mapped(services[name]), name
