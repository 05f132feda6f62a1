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
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from nats.errors import NoRespondersError

from shared import bus, subjects
from shared.embedded_nats import free_port, server_binary, wait_for_port
from shared.health_view import open_bucket
from shared.messages import ATTEMPT_WANTED
from shared.processes import die_with_parent
from tests.support.processes import Simulator, Stack, wait_until

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


def _stream(stack: Stack, prompt: str) -> httpx.Response:
    return httpx.post(stack.gateway_url + "/v1/chat/completions", timeout=30, trust_env=False,
                      json={"model": "tiny", "stream": True, "messages": [{"role": "user", "content": prompt}]})


@pytest.mark.parametrize("caller", ["gateway", "client", "health"])
def test_a_worker_may_ask_a_caller_about_an_attempt_and_hear_the_answer(secured_nats: dict[str, str],
                                                                        caller: str) -> None:
    async def ask() -> bytes:
        urls = secured_nats
        answering = await nats.connect(urls[caller], inbox_prefix=bus.inbox_prefix_for(urls[caller]))
        asking = await nats.connect(urls["worker"], inbox_prefix=bus.inbox_prefix_for(urls["worker"]))
        try:
            inbox = answering.new_inbox()

            async def answer(msg: Msg) -> None:
                await msg.respond(ATTEMPT_WANTED)

            await answering.subscribe(inbox + ".*", cb=answer)
            await answering.flush()
            for _ in range(20):  # once, in a full run, the subscription was not yet seen: ask again
                try:
                    return (await asking.request(inbox + ".attempt1", b"", timeout=2)).data
                except NoRespondersError:
                    await asyncio.sleep(0.05)
            raise AssertionError("the caller's subscription never became visible to the worker")
        finally:
            await asking.close()
            await answering.close()

    assert asyncio.run(ask()) == ATTEMPT_WANTED


def test_a_worker_asking_whether_its_caller_still_waits_is_answered_within_permissions(
        secured_stack: Stack) -> None:
    sim: Simulator = secured_stack.sim
    wait_until(lambda: _stream(secured_stack, "warm").status_code == 200, 30, "the secured stack to serve")
    sim.knobs(tokens=40, itl_ms=40)  # 1.6 s: several caller checks
    try:
        response = _stream(secured_stack, "long")
    finally:
        sim.knobs(tokens=16, itl_ms=0)
    assert response.text.endswith("data: [DONE]\n\n") and '"error"' not in response.text
    assert response.text.count('"content"') >= 40  # not cut short: every check said "still wanted"
    assert "Permissions Violation" not in secured_stack.logs()


def test_a_killed_gateway_frees_the_backend_within_a_caller_check(secured_stack: Stack,
                                                                   secured_nats: dict[str, str]) -> None:
    """Last in the module: it kills the gateway (and starts another for whatever follows)."""
    sim: Simulator = secured_stack.sim
    gateway = next(p for p in secured_stack.processes if p.name == "gateway" and p.alive)
    aborted = sim.stats()["aborted"]
    sim.knobs(tokens=10_000, itl_ms=20)  # 200 s, far past any check
    try:
        with httpx.stream("POST", secured_stack.gateway_url + "/v1/chat/completions", timeout=30, trust_env=False,
                          json={"model": "tiny", "stream": True,
                                "messages": [{"role": "user", "content": "forever"}]}) as response:
            next(response.iter_lines())
            gateway.kill()
            killed_at = time.monotonic()
        wait_until(lambda: sim.stats()["aborted"] > aborted, 10, "the backend connection to close")
        assert time.monotonic() - killed_at < CALLER_CHECK_S + 3
    finally:
        sim.knobs(tokens=16, itl_ms=0)
        secured_stack.gateway("--nats", secured_nats["gateway"])
    assert "Permissions Violation" not in secured_stack.logs()
