"""Live config (issue 17 item 1): `aiub config push` publishes a revision that router, workers and
gateway apply without a restart. Real processes on this module's own NATS.

Which provider answered is told by the reply's length: simulator `a` says 3 tokens, `b` 7.
The tests run in order on one stack: each starts from the revision the previous one left.
"""

from __future__ import annotations

import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from shared.config import ConfigError
from tests.support.processes import Stack, wait_until, wait_until_async

TOKENS = {3: "a", 7: "b"}
_asked = itertools.count()


def providers(sims: dict[str, str]) -> dict[str, Any]:
    return {name: {"type": "vllm", "base_url": url, "max_concurrency": 64, "models": {"m": {}}}
            for name, url in sims.items()}


def mappings(provider: str) -> dict[str, Any]:
    return {"exact_matches": {"m": {"provider": provider}}}


def write(directory: Path, sims: dict[str, str], provider: str, extra_mappings: dict[str, Any] | None = None) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "providers.yaml").write_text(yaml.safe_dump({"providers": providers(sims)}))
    (directory / "model-mappings.yaml").write_text(yaml.safe_dump({**mappings(provider), **(extra_mappings or {})}))
    (directory / "aiub.yaml").write_text(yaml.safe_dump(
        {"deadlines": {"accepted_s": 5, "first_token_s": 5, "idle_s": 5, "total_s": 30}}))
    return directory


def aiub_config(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cli", "config", "--nats", stack.nats_url, *args],
                          env=stack.env, capture_output=True, text=True, timeout=60)


def ask(client: httpx.Client, url: str) -> tuple[int, str | None]:
    """(status, the provider that answered)."""
    body = {"model": "m", "messages": [{"role": "user", "content": f"q{next(_asked)}"}]}
    response = client.post(url + "/v1/chat/completions", json=body, timeout=20)
    if response.status_code != 200:
        return response.status_code, None
    return 200, TOKENS.get(response.json()["usage"]["completion_tokens"])


def answered_by(stack: Stack) -> str | None:
    with httpx.Client(trust_env=False) as client:
        return ask(client, stack.gateway_url)[1]


@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("live-config")), nats_url)
    sims = {"a": s.simulator("openai", ["m"], "--tokens", "3").url,
            "b": s.simulator("openai", ["m"], "--tokens", "7").url}
    s.runtime = {"sims": sims}
    write(s.config_dir, sims, "a")
    pushed = aiub_config(s, "push", str(s.config_dir))
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    s.router = s.service("router")
    s.service("health")
    worker = s.worker("a", "b")
    s.gateway()
    try:
        wait_until(lambda: "router_ready" in s.router.log() and "worker_ready" in worker.log(), 30,
                   "the router and the worker to be ready")
        s.wait_serving("m")
        yield s
    finally:
        s.stop()


def test_a_push_moves_a_model_under_load_with_no_failed_request(stack: Stack) -> None:
    assert answered_by(stack) == "a"
    results: list[tuple[float, int, str | None]] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(trust_env=False) as client:
            while not stop.is_set():
                started = time.monotonic()
                status, provider = ask(client, stack.gateway_url)
                results.append((started, status, provider))

    threads = [threading.Thread(target=load) for _ in range(6)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1.0)
        write(stack.root / "to-b", stack.runtime["sims"], "b")
        push_started = time.monotonic()
        pushed = aiub_config(stack, "push", str(stack.root / "to-b"))
        pushed_at = time.monotonic()
        assert pushed.returncode == 0, pushed.stdout + pushed.stderr
        assert "published revision 2" in pushed.stdout
        time.sleep(2.5)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert [r for r in results if r[1] != 200] == [], "every request under the push succeeds"
    # Asked well before `aiub config push` started: it cannot have published yet (it takes under
    # half a second now that it starts from bytecode, so "1.5 s before it returned" could be empty).
    before = [p for t, _, p in results if t < push_started - 0.2]
    after = [p for t, _, p in results if t > pushed_at + 1.0]
    assert before and set(before) == {"a"}
    assert len(after) > 20 and set(after) == {"b"}, stack.logs()
    applied = '"revision":2,'
    for proc in stack.processes:  # every service applied it
        if not proc.name.startswith("simulator"):
            wait_until(lambda p=proc: applied in p.log() and "config_applied" in p.log(), 2.0,
                       f"{proc.name} to apply revision 2")


def test_a_broken_revision_is_refused_at_push_and_the_running_one_stays(stack: Stack) -> None:
    broken = write(stack.root / "broken", stack.runtime["sims"], "nowhere")
    refused = aiub_config(stack, "push", str(broken))
    assert refused.returncode == 1
    assert "error:" in refused.stdout and "nowhere" in refused.stdout  # `aiub validate`'s words
    assert "refused: nothing published" in refused.stdout
    history = aiub_config(stack, "history")
    assert history.returncode == 0 and "   3" not in history.stdout and "   2*" in history.stdout
    assert answered_by(stack) == "b"


def test_history_diff_and_rollback(stack: Stack) -> None:
    history = aiub_config(stack, "history", "--json")
    assert [(r["revision"], r["current"]) for r in yaml.safe_load(history.stdout)] == [(1, False), (2, True)]
    changed = aiub_config(stack, "diff")
    assert changed.returncode == 0
    assert "--- rev 1/model-mappings.yaml" in changed.stdout and "+    provider: b" in changed.stdout
    assert aiub_config(stack, "diff", "1", "1").stdout == "(no difference)\n"
    rolled = aiub_config(stack, "rollback", "1")
    assert rolled.returncode == 0 and "published revision 3 (rollback to 1)" in rolled.stdout, rolled.stdout
    wait_until(lambda: answered_by(stack) == "a", 2.0, "the rollback to route to a again")
    assert "rev 1/model-mappings.yaml" not in aiub_config(stack, "diff", "1", "3").stdout
    again = aiub_config(stack, "rollback", "3")
    assert again.returncode == 0 and "unchanged: revision 3" in again.stdout
    for action in ("rollback", "show"):  # 0 is a revision number that does not exist, not "the current one"
        zero = aiub_config(stack, action, "0")
        assert zero.returncode == 1 and "no revision 0" in zero.stderr, (action, zero.stdout, zero.stderr)


def test_a_service_started_after_a_push_runs_the_buckets_revision(stack: Stack) -> None:
    to_b = aiub_config(stack, "push", str(stack.root / "to-b"))
    assert "published revision 4" in to_b.stdout, to_b.stdout
    wait_until(lambda: answered_by(stack) == "b", 2.0, "revision 4 to route to b")
    # A new router whose files still say `a`: it must follow the bucket (b) from its first request.
    stack.router.stop()
    assert (yaml.safe_load((stack.config_dir / "model-mappings.yaml").read_text())
            == mappings("a"))
    stack.router = stack.service("router")
    wait_until(lambda: "router_ready" in stack.router.log(), 30, "the new router to be ready")
    assert {answered_by(stack) for _ in range(5)} == {"b"}


def test_a_worker_that_cannot_apply_a_revision_keeps_its_own(stack: Stack) -> None:
    only_a = stack.root / "only-a"
    write(only_a, {"a": stack.runtime["sims"]["a"]}, "a")
    pushed = aiub_config(stack, "push", str(only_a))
    assert pushed.returncode == 0 and "providers.b: removed" in pushed.stdout, pushed.stdout
    worker = next(p for p in stack.processes if p.name == "worker-a-b")
    wait_until(lambda: "config_revision_refused" in worker.log(), 2.0, "the worker to refuse revision 5")
    assert "this worker serves b (--provider)" in worker.log()
    wait_until(lambda: answered_by(stack) == "a", 2.0, "revision 5 to route to a")


async def test_the_dashboards_config_view_saves_through_the_same_push(stack: Stack) -> None:
    from cli.dashboard import config_edit

    directory = write(stack.root / "dashboard", stack.runtime["sims"], "a")
    edited = {"model-mappings.yaml": yaml.safe_dump(mappings("b"))}
    with pytest.raises(ConfigError, match="nowhere"):  # refused: nothing published, nothing written
        await config_edit.publish(stack.nats_url, directory, {"model-mappings.yaml": yaml.safe_dump(
            mappings("nowhere"))}, stack.env)
    assert yaml.safe_load((directory / "model-mappings.yaml").read_text()) == mappings("a")
    saved, said = await config_edit.publish(stack.nats_url, directory, edited, stack.env)
    assert saved and "published revision 6 (dashboard)" in said and "wrote model-mappings.yaml" in said, said
    assert yaml.safe_load((directory / "model-mappings.yaml").read_text()) == mappings("b")
    await wait_until_async(lambda: answered_by(stack) == "b", 3.0, "the dashboard's revision to route to b")


def test_the_ollama_door_follows_a_pushed_revision(stack: Stack) -> None:
    """Its model list and the names its doors accept were once read at start only."""
    def tags() -> list[str]:
        listed = httpx.get(stack.gateway_url + "/api/tags", timeout=10, trust_env=False)
        return [m["name"] for m in listed.json()["models"]]

    assert "m-renamed" not in tags()
    renamed = write(stack.root / "renamed", stack.runtime["sims"], "a",
                    {"exact_matches": {"m": {"provider": "a"}, "m-renamed": {"provider": "a", "backend_model": "m"}}})
    pushed = aiub_config(stack, "push", str(renamed))
    assert pushed.returncode == 0, pushed.stdout + pushed.stderr
    wait_until(lambda: "m-renamed" in tags(), 2.0, "the pushed name in /api/tags")
    chat = httpx.post(stack.gateway_url + "/api/chat", timeout=20, trust_env=False, json={
        "model": "m-renamed", "stream": False, "messages": [{"role": "user", "content": "hi"}]})
    assert chat.status_code == 200, chat.text
    assert chat.json()["model"] == "m-renamed" and chat.json()["done"] is True
