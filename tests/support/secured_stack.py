"""compose's NATS for tests: a nats-server running deploy/nats/nats.conf with one user per service,
and a stack whose every service connects as its own user. A pytest plugin (tests/conftest.py),
used by tests/integration/test_compose_nats.py and tests/chaos/test_compose_nats_kill.py."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from shared.embedded_nats import free_port, server_binary, wait_for_port
from shared.processes import die_with_parent
from tests.support.processes import Stack, wait_until

ROOT = Path(__file__).resolve().parents[2]
USERS = ("gateway", "router", "health", "worker", "client", "monitor")
CALLER_CHECK_S = 0.3


@pytest.fixture(scope="module")
def secured_nats(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """URL per user of a nats-server running deploy/nats/nats.conf."""
    root = tmp_path_factory.mktemp("nats-compose")
    shipped = ROOT / "deploy" / "nats"
    (root / "auth.conf").write_text((shipped / "auth.conf").read_text())
    conf = (shipped / "nats.conf").read_text()
    assert "store_dir: /data\n" in conf
    (root / "nats.conf").write_text(conf.replace("store_dir: /data\n", f'store_dir: "{root / "js"}"\n'))
    port = free_port()
    passwords = {user: f"pw-{user}-{os.urandom(6).hex()}" for user in USERS}
    env = {**os.environ, **{f"NATS_{user.upper()}_PASSWORD": pw for user, pw in passwords.items()}}
    with (root / "server.log").open("ab") as log:
        process = subprocess.Popen(
            [server_binary(), "-c", str(root / "nats.conf"), "-a", "127.0.0.1", "-p", str(port),
             "-m", str(free_port())],
            env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
    try:
        wait_for_port("127.0.0.1", port, 15, process)
        yield {user: f"nats://{user}:{pw}@127.0.0.1:{port}" for user, pw in passwords.items()}
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture(scope="module")
def secured_stack(tmp_path_factory: pytest.TempPathFactory, secured_nats: dict[str, str]) -> Iterator[Stack]:
    stack = Stack(tmp_path_factory.mktemp("stack"), secured_nats["client"])
    stack.env.pop("NATS_URL", None)
    try:
        sim = stack.simulator("ollama", ["tiny"])
        stack.sim = sim
        stack.write_config({"ollama": {"type": "ollama", "base_url": sim.url, "models": ["tiny"],
                                       "health": {"interval_s": 1}}},
                           {"exact_matches": {"tiny": {"provider": "ollama"}}},
                           {"worker": {"caller_check_s": CALLER_CHECK_S}, "cache": {"enabled": False}})
        stack.service("router", "--nats", secured_nats["router"])
        stack.service("health", "--nats", secured_nats["health"])
        stack.spawn("worker", "worker", "--config", str(stack.config_dir), "--provider", "ollama",
                    "--nats", secured_nats["worker"])
        stack.gateway("--nats", secured_nats["gateway"])
        yield stack
    finally:
        stack.stop()


def wait_until_served(stack: Stack) -> None:
    """Until a chat answers 200 through the gateway, router and worker users: a fresh stack's worker
    may subscribe after the gateway listens."""
    def answered() -> bool:
        response = httpx.post(stack.gateway_url + "/v1/chat/completions", timeout=10, trust_env=False,
                              json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
                                    "max_tokens": 3})
        return response.status_code == 200

    wait_until(answered, 30, "a 200 through gateway, router and worker users", interval_s=0.25)
