"""Authentication end to end, with virtual keys in the key file (no Redis) made by `aiub keys`.

Every refused request is checked to have cost the backend nothing (the simulator's counter),
and no key, right or wrong, may show up in the gateway's log.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from shared.embedded_nats import free_port
from tests.support.processes import Simulator, Stack, wait_served, wait_until

MASTER = "master-" + uuid.uuid4().hex
MODEL, FORBIDDEN = "auth-model", "forbidden-model"
MESSAGES = [{"role": "user", "content": "hello"}]

@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("auth")), nats_url)
    s.env.pop("REDIS_URL", None)
    s.env["AIUB_MASTER_KEY"] = MASTER
    sim = s.simulator("openai", ["backend-model"])
    models = {name: {"backend_model": "backend-model"} for name in (MODEL, FORBIDDEN)}
    s.write_config(
        providers={"sim": {"type": "vllm", "base_url": sim.url, "max_concurrency": 16, "models": models}},
        mappings={"exact_matches": {name: {"provider": "sim"} for name in models}},
        runtime={"deadlines": {"first_token_s": 5, "idle_s": 3, "total_s": 20, "retry_budget": 0},
                 "cache": {"enabled": False}},
    )
    s.sim = sim
    s.state_dir = s.root / "state"
    s.service("router")
    s.worker("sim")
    s.gateway("--state-dir", str(s.state_dir))
    wait_served(s.gateway_url, MODEL, MASTER)
    try:
        yield s
    finally:
        s.stop()


def _keys(stack: Stack, *args: str) -> str:
    out = subprocess.run([sys.executable, "-m", "cli", "keys", "--config", str(stack.config_dir),
                          "--state-dir", str(stack.state_dir), *args],
                         env=stack.env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _create(stack: Stack, *args: str) -> tuple[str, str]:
    made = json.loads(_keys(stack, "create", "--json", *args))
    return made["key"], made["id"]


def _backend_calls(stack: Stack) -> int:
    sim: Simulator = stack.sim
    return int(sim.stats()["requests"])


def _post(stack: Stack, headers: dict[str, str], model: str = MODEL) -> httpx.Response:
    return httpx.post(stack.gateway_url + "/v1/chat/completions", json={"model": model, "messages": MESSAGES},
                      headers=headers, trust_env=False, timeout=10)


def _raw(stack: Stack, auth_line: bytes) -> bytes:
    body = json.dumps({"model": MODEL, "messages": MESSAGES}).encode()
    port = int(stack.gateway_url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Connection: close\r\n" + auth_line + b"\r\nContent-Length: " + str(len(body)).encode()
                     + b"\r\n\r\n" + body)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_valid_keys_are_served(stack: Stack) -> None:
    key, _ = _create(stack, "--models", MODEL, "--expires", "30d")
    for api_key in (MASTER, key):
        with openai.OpenAI(base_url=stack.gateway_url + "/v1", api_key=api_key, max_retries=0, timeout=20) as client:
            reply = client.chat.completions.create(model=MODEL, messages=MESSAGES)  # type: ignore[arg-type]
            assert reply.choices[0].message.content
            assert MODEL in {m.id for m in client.models.list().data}
    assert _post(stack, {"authorization": f"bearer {key}"}).status_code == 200


def test_every_auth_failure_is_401_with_zero_backend_calls(stack: Stack) -> None:
    revoked, revoked_id = _create(stack)
    _keys(stack, "revoke", revoked_id)
    expired, _ = _create(stack, "--expires", "1s")
    expiry = time.time() + 1.0  # no earlier than the key's own: it was stamped before we got here
    wait_until(lambda: time.time() > expiry, 5, "the key to expire")  # expiry is the clock's business
    unknown = "sk-aiub-0123456789ab_" + "f" * 64
    variants = {
        "no header": {},
        "scheme only": {"authorization": "Bearer"},
        "no scheme": {"authorization": MASTER},
        "basic": {"authorization": "Basic " + MASTER},
        "wrong master": {"authorization": "Bearer " + MASTER[:-1] + "x"},
        "unknown virtual key": {"authorization": "Bearer " + unknown},
        "revoked": {"authorization": "Bearer " + revoked},
        "expired": {"authorization": "Bearer " + expired},
        "8 KB key": {"authorization": "Bearer sk-" + "k" * 8192},
    }
    before = _backend_calls(stack)
    for name, headers in variants.items():
        response = _post(stack, headers)
        assert response.status_code == 401, name
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"}, name
        assert error["type"] == "authentication_error", name
        for secret in (MASTER, revoked, expired, unknown):
            assert secret not in response.text, name
    assert "revoked" in _post(stack, variants["revoked"]).json()["error"]["message"]
    assert httpx.get(stack.gateway_url + "/v1/models", trust_env=False).status_code == 401
    assert _raw(stack, b"Authorization: Bearer ").startswith(b"HTTP/1.1 401")  # empty bearer (httpx won't send it)
    # CR/LF: the client's key ends where the line does; what follows is another header, not key.
    injected = _raw(stack, b"Authorization: Bearer " + unknown.encode() + b"\r\nX-Injected: " + MASTER.encode())
    assert injected.startswith(b"HTTP/1.1 401")
    # A bare CR inside the value is not HTTP at all: the parser refuses it before the gateway runs.
    assert _raw(stack, b"Authorization: Bearer " + MASTER.encode() + b"\rx").startswith(b"HTTP/1.1 400")
    assert _backend_calls(stack) == before


def test_a_key_limited_to_models_gets_403_for_others(stack: Stack) -> None:
    key, _ = _create(stack, "--models", MODEL)
    before = _backend_calls(stack)
    response = _post(stack, {"authorization": f"Bearer {key}"}, model=FORBIDDEN)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "model_not_allowed"
    assert _backend_calls(stack) == before


def test_keys_are_listed_without_secrets_and_never_logged(stack: Stack) -> None:
    key, key_id = _create(stack, "--name", "listed", "--rpm", "60", "--tpm", "1000")
    _post(stack, {"authorization": f"Bearer {key[:-1]}0"})
    listing = json.loads(_keys(stack, "list", "--json"))
    mine = next(row for row in listing if row["id"] == key_id)
    assert (mine["name"], mine["status"], mine["rpm"], mine["tpm"]) == ("listed", "active", 60, 1000)
    table = _keys(stack, "list")
    assert key_id in table and "sk-aiub-" not in table
    assert any(row["status"] == "revoked" for row in listing)
    stored = (stack.state_dir / "keys.json").read_text()
    gateway_log = next(p for p in stack.processes if p.name == "gateway").log()
    for text in (stored, gateway_log):
        assert key not in text and key[:-1] not in text and MASTER not in text


def test_creating_a_key_says_where_it_is_stored(stack: Stack) -> None:
    out = subprocess.run([sys.executable, "-m", "cli", "keys", "--config", str(stack.config_dir),
                          "--state-dir", str(stack.state_dir), "create", "--name", "where"],
                         env=stack.env, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and out.stdout.startswith("sk-aiub-")
    assert f"stored in {stack.state_dir / 'keys.json'}" in out.stderr
    assert "REDIS_URL is unset" in out.stderr


def test_a_public_bind_needs_a_master_key_or_insecure_no_auth(stack: Stack) -> None:
    env = {k: v for k, v in stack.env.items() if k != "AIUB_MASTER_KEY"}
    base = [sys.executable, "-m", "cli", "gateway", "--config", str(stack.config_dir), "--host", "0.0.0.0"]
    refused = subprocess.run([*base, "--port", str(free_port())], env=env, capture_output=True, text=True,
                             timeout=30)
    assert refused.returncode == 2
    assert "--insecure-no-auth" in refused.stderr
    port = free_port()
    proc = subprocess.Popen([*base, "--port", str(port), "--insecure-no-auth"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def ready() -> bool:
            assert proc.poll() is None, "the gateway exited"
            try:
                return httpx.get(f"http://127.0.0.1:{port}/ready", trust_env=False, timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, 30, "the insecure gateway to be ready")
    finally:
        proc.terminate()
        proc.wait(10)
