"""`aiub up` keeps its embedded NATS: killed under load, it is restarted on the same port with
the same store, and the stack serves again without anyone touching the services; a bus that
cannot come back stops the stack with a reason and a non-zero exit.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx
import msgspec
import nats
import pytest
import yaml

from shared import subjects
from shared.messages import ProviderState
from tests.support.processes import wait_served, wait_until
from tests.support.up import AiubUp

pytestmark = pytest.mark.chaos

MODEL = "chaos-model"
PROVIDER = "sim"
# What a request in flight when the bus went away may end with, besides a 200 after a retry.
HONEST_LOSSES = {(504, "deadline_exceeded"), (502, "frames_lost")}
PROMPT_S = 5.0  # an error during the outage comes at least this fast (the total deadline is far longer)


@pytest.fixture
def up(tmp_path: Path) -> Iterator[AiubUp]:
    config = tmp_path / "config"
    config.mkdir()
    (config / "providers.yaml").write_text(yaml.safe_dump({"providers": {PROVIDER: {
        "type": "ollama", "base_url": "http://127.0.0.1:9", "models": [MODEL]}}}))
    (config / "model-mappings.yaml").write_text(yaml.safe_dump({"exact_matches": {MODEL: {"provider": PROVIDER}}}))
    stack = AiubUp(tmp_path, config, "--demo", embedded_nats=True)
    try:
        stack.wait_up()
        wait_served(stack.url, MODEL)
        yield stack
    finally:
        stack.stop()


@dataclass(frozen=True)
class Answer:
    started: float
    took_s: float
    status: int  # 0: no HTTP answer at all
    code: str | None  # the OpenAI error's `code`, or its `type` when it has none


class Load:
    """`clients` threads sending chat requests back to back, every answer kept."""

    def __init__(self, url: str, clients: int) -> None:
        self.url = url
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *_: type[BaseException] | BaseException | TracebackType | None) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)

    def first_success_after(self, t: float) -> float | None:
        ends = [a.started + a.took_s for a in list(self.answers) if a.started > t and a.status == 200]
        return min(ends, default=None)

    def _run(self) -> None:
        with httpx.Client(trust_env=False, timeout=30) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    reply = http.post(self.url + "/v1/chat/completions", headers={"cache-control": "no-store"},
                                      json={"model": MODEL, "messages": [{"role": "user", "content": "load"}]})
                    status, code = reply.status_code, _error_code(reply)
                except httpx.HTTPError as e:
                    status, code = 0, repr(e)
                self.answers.append(Answer(started, time.monotonic() - started, status, code))


def _timeline(answers: list[Answer], since: float) -> str:
    """Each answer around `since` as `+start took status code`, for a failure message to show the outage."""
    return "\n".join(f"{a.started - since:+7.2f}s {a.took_s:6.2f}s {a.status} {a.code or ''}"
                     for a in sorted(answers, key=lambda a: a.started) if a.started + a.took_s >= since - 1)


def _error_code(reply: httpx.Response) -> str | None:
    if reply.status_code == 200:
        return None
    error = reply.json()["error"]  # an OpenAI error body, or this raises
    assert {"message", "type"} <= set(error), error
    return str(error.get("code") or error["type"])


def _kv(nats_url: str, op: str, key: str, value: bytes = b"") -> tuple[int, bytes] | None:
    async def run() -> tuple[int, bytes] | None:
        nc = await nats.connect(nats_url, connect_timeout=2, allow_reconnect=False)
        try:
            kv = await nc.jetstream().key_value(subjects.HEALTH_BUCKET)
            if op == "put":
                return await kv.put(key, value), value
            try:
                entry = await kv.get(key)
            except nats.js.errors.KeyNotFoundError:
                return None
            return entry.revision or 0, entry.value or b""
        finally:
            await nc.close()
    return asyncio.run(run())


def _nats_pid(stack: AiubUp) -> int:
    found: list[int] = []

    def one() -> bool:
        found[:] = stack.child_pids("nats-server")
        return len(found) == 1
    wait_until(one, 10, "aiub up to have one nats-server")
    return found[0]


def test_a_killed_bus_is_restarted_and_the_stack_serves_again_by_itself(up: AiubUp) -> None:
    nats_url = str(up.stack()["nats_url"])
    wait_until(lambda: _kv(nats_url, "get", PROVIDER) is not None, 20, "the provider's state in the bucket")
    before = _kv(nats_url, "get", PROVIDER)
    assert before is not None
    _kv(nats_url, "put", "_written_before_the_kill", b"still here")
    old_pid = _nats_pid(up)

    with Load(up.url, clients=4) as load:
        wait_until(lambda: load.first_success_after(0) is not None, 20, "the load to be served")
        killed_at = time.monotonic()
        os.kill(old_pid, signal.SIGKILL)
        wait_until(lambda: load.first_success_after(killed_at) is not None, 30,
                   "a request sent after the kill to succeed")
        recovered_at = load.first_success_after(killed_at)
        assert recovered_at is not None

    print(f"bus killed -> first request served again: {recovered_at - killed_at:.2f}s")
    assert recovered_at - killed_at < 10, _timeline(load.answers, killed_at)
    assert up.process.poll() is None
    assert "nats-server is back on " + nats_url in up.output()
    assert _nats_pid(up) != old_pid
    during = [a for a in load.answers if killed_at <= a.started + a.took_s < recovered_at]
    assert during, "no request was answered while the bus was down"
    # Sent while the bus was down: 503 at once; in flight at the kill: retried once the bus is back
    # (frames it lost are noticed by a gap or by asking the worker), else 504 at the accepted deadline
    # or, the retry budget spent, the lost frames' 502.
    assert [a for a in during if a.status not in (200, 503) and (a.status, a.code) not in HONEST_LOSSES] == []
    assert all(a.took_s < PROMPT_S for a in during), [a for a in during if a.took_s >= PROMPT_S]
    assert not [a for a in load.answers if a.status == 0], "a request got no HTTP answer"

    # The store survived: what was in the health bucket before the kill is there after.
    assert _kv(nats_url, "get", "_written_before_the_kill") is not None
    after = _kv(nats_url, "get", PROVIDER)
    assert after is not None and after[0] >= before[0]
    assert after[0] > before[0] or after[1] == before[1]

    # The router's KV watcher resumed: a state written now reaches it and it obeys.
    state = msgspec.json.decode(after[1], type=ProviderState)
    _kv(nats_url, "put", PROVIDER, msgspec.json.encode(msgspec.structs.replace(
        state, state="unavailable", reason="chaos test", seq=state.seq + 1000, open_until=time.time() + 600)))
    written_at = time.monotonic()
    wait_until(lambda: _refusal(up.url) == "no_provider_available", 30, "the router to see the new state",
               interval_s=0.1)
    print(f"state written after the restart -> obeyed by the router: {time.monotonic() - written_at:.2f}s")


def test_a_frozen_bus_is_killed_and_restarted(up: AiubUp) -> None:
    old_pid = _nats_pid(up)
    with Load(up.url, clients=2) as load:
        wait_until(lambda: load.first_success_after(0) is not None, 20, "the load to be served")
        frozen_at = time.monotonic()
        os.kill(old_pid, signal.SIGSTOP)
        try:
            wait_until(lambda: load.first_success_after(frozen_at) is not None, 60,
                       "a request sent after the freeze to succeed")
        finally:
            if Path(f"/proc/{old_pid}").exists():
                os.kill(old_pid, signal.SIGCONT)
        recovered_at = load.first_success_after(frozen_at)
        assert recovered_at is not None
    print(f"bus frozen -> first request served again: {recovered_at - frozen_at:.2f}s")
    # Four missed probes two seconds apart, the kill, a restart: well inside twenty seconds.
    assert recovered_at - frozen_at < 20
    assert "did not answer 4 liveness probes in a row" in up.output()
    assert up.process.poll() is None
    # A request caught by the freeze ends at one of its deadlines (idle: 10 s), as an OpenAI error.
    during = [a for a in load.answers if frozen_at <= a.started + a.took_s < recovered_at]
    assert all((a.status == 503 or (a.status, a.code) in HONEST_LOSSES) and a.took_s < 12
               for a in during if a.status != 200), during
    assert not [a for a in load.answers if a.status == 0], "a request got no HTTP answer"


def _refusal(url: str) -> str | None:
    reply = httpx.post(url + "/v1/chat/completions", headers={"cache-control": "no-store"}, trust_env=False,
                       timeout=10, json={"model": MODEL, "messages": [{"role": "user", "content": "refused?"}]})
    return _error_code(reply)


def test_a_bus_that_cannot_come_back_stops_the_stack_and_says_why(up: AiubUp) -> None:
    port = int(str(up.stack()["nats_url"]).rsplit(":", 1)[1])
    printed_pids = [int(p) for p in re.findall(r"\bpid (\d+)", up.output())]
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        os.kill(_nats_pid(up), signal.SIGKILL)
        wait_until(lambda: _bind(squatter, port), 5, f"port {port} to be free for the squatter", interval_s=0.005)
        squatter.listen()
        wait_until(lambda: up.process.poll() is not None, 60, "aiub up to give up on the bus", interval_s=0.1)
    finally:
        squatter.close()
    output = up.output()
    assert up.process.returncode == 1, output
    assert "could not be brought back" in output and f"127.0.0.1:{port} is taken by another process" in output
    # Every child it started is gone with it.
    wait_until(lambda: not any(Path(f"/proc/{pid}").exists() for pid in printed_pids), 10,
               "every child of aiub up to exit")


def _bind(sock: socket.socket, port: int) -> bool:
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        return False
    return True
