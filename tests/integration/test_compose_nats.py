"""The compose NATS config (deploy/nats): each service as its own user still serves a request end to
end, and a user cannot reach subjects outside its permissions.

The server runs the shipped config unchanged except for where it listens (command-line flags) and
stores (a copy with its store_dir replaced), so a permission the services need and the file lacks
fails here.
"""

from __future__ import annotations

import asyncio

import httpx
import nats
import pytest
from nats.aio.msg import Msg
from nats.errors import NoRespondersError

from shared import bus, subjects
from shared.health_view import open_bucket
from shared.messages import ATTEMPT_WANTED
from tests.support.processes import Simulator, Stack, wait_until


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
