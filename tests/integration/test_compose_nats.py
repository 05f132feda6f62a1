"""The compose NATS config (deploy/nats): each service as its own user still serves a request end to
end, and a user cannot reach subjects outside its permissions.

The server runs the shipped config unchanged except for where it listens (command-line flags) and
stores (a copy with its store_dir replaced), so a permission the services need and the file lacks
fails here.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest

from shared import bus, subjects
from shared.embedded_nats import free_port, server_binary, wait_for_port
from shared.health_view import open_bucket
from shared.processes import die_with_parent
from tests.support.processes import Stack, wait_until

ROOT = Path(__file__).resolve().parents[2]
USERS = ("gateway", "router", "health", "worker", "client", "monitor")


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
        stack.write_config({"ollama": {"type": "ollama", "base_url": sim.url, "models": ["tiny"],
                                       "health": {"interval_s": 1}}},
                           {"exact_matches": {"tiny": {"provider": "ollama"}}})
        stack.service("router", "--nats", secured_nats["router"])
        stack.service("health", "--nats", secured_nats["health"])
        stack.spawn("worker", "worker", "--config", str(stack.config_dir), "--provider", "ollama",
                    "--nats", secured_nats["worker"])
        stack.gateway("--nats", secured_nats["gateway"])
        yield stack
    finally:
        stack.stop()


def test_every_service_as_its_own_user_serves_a_request(secured_stack: Stack) -> None:
    answers: list[httpx.Response] = []

    def answered() -> bool:
        for proc in secured_stack.processes:
            assert proc.alive, f"{proc.name} exited:\n{secured_stack.logs()}"
        response = httpx.post(secured_stack.gateway_url + "/v1/chat/completions", timeout=10, trust_env=False,
                              json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}],
                                    "max_tokens": 3})
        answers.append(response)
        return response.status_code == 200

    wait_until(answered, 30, "a 200 through gateway, router and worker users", interval_s=0.25)
    assert answers[-1].json()["choices"][0]["message"]["content"]
    assert "Permissions Violation" not in secured_stack.logs()


async def _violations(url: str, action: str, subject: str) -> list[str]:
    errors: list[str] = []

    async def on_error(error: Exception) -> None:
        errors.append(str(error))

    nc = await nats.connect(url, error_cb=on_error, allow_reconnect=False)
    try:
        if action == "publish":
            await nc.publish(subject, b"{}")
        else:
            await nc.subscribe(subject, cb=_ignore)
        await nc.flush()
        for _ in range(100):
            if errors:
                break
            await asyncio.sleep(0.02)
    finally:
        await nc.close()
    return errors


async def _ignore(_: object) -> None:
    return None


@pytest.mark.parametrize(("user", "action", "subject"), [
    ("gateway", "publish", subjects.work("ollama")),  # the gateway cannot skip the router
    ("client", "publish", subjects.work("ollama")),  # nor can a NATS client skip gateway policy and router
    ("client", "subscribe", subjects.REQUESTS),  # or read others' requests
    ("worker", "publish", subjects.REQUESTS),
    ("worker", "subscribe", "_INBOX.>"),  # a worker writes to callers' inboxes, never reads them
    ("client", "subscribe", "_INBOX.gateway.>"),  # one caller never reads another's frames
    ("client", "subscribe", "_INBOX.>"),
    ("gateway", "subscribe", "_INBOX.client.>"),
    ("monitor", "publish", subjects.REQUESTS),
    ("router", "publish", "$KV.aiub_health.ollama"),  # only the health service writes provider state
])
def test_a_user_cannot_leave_its_subjects(secured_nats: dict[str, str], user: str, action: str,
                                          subject: str) -> None:
    errors = asyncio.run(_violations(secured_nats[user], action, subject))
    assert any("permissions violation" in e.lower() for e in errors), errors


def test_health_writes_provider_state_that_a_monitor_can_read(secured_stack: Stack,
                                                              secured_nats: dict[str, str]) -> None:
    async def provider_keys() -> list[str]:
        nc = await nats.connect(secured_nats["monitor"], inbox_prefix=bus.inbox_prefix_for(secured_nats["monitor"]))
        try:
            kv = await open_bucket(nc.jetstream())
            watcher = await kv.watchall()
            keys = []
            async for entry in watcher:
                if entry is None:
                    break
                keys.append(entry.key)
            await watcher.stop()
            return keys
        finally:
            await nc.close()

    wait_until(lambda: "ollama" in asyncio.run(provider_keys()), 20, "health to write ollama's state",
               interval_s=0.25)
