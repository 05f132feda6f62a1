"""The OpenAI-compatible contract against a real llama.cpp server: llama-cpp-python's, the spec's
llama.cpp "Python" server, serving a tiny model the test writes itself (tiny_gguf.py).

The text is noise, so the tests check the protocol, not the words: end-of-sequence is
suppressed with `logit_bias` so every reply runs to `max_tokens`, and byte tokens can decode to
empty pieces, so chunks are counted rather than words. Where this server differs from the
contract, the `llama_cpp` provider type makes up the difference, and the test says so:
- it sends no usage chunk for `stream_options.include_usage`: the adapter sends one, counting
  the content chunks (test_stream_contract);
- it has no `/health`: the health probe for `llama_cpp` is `GET /v1/models` (test_health_probe);
- it serves one request at a time: `max_concurrency: 1` queues the rest in the worker
  (test_concurrent_requests_queue_and_all_finish);
- embeddings need an instance started with `--embedding`: that is a second provider
  (test_embeddings_from_the_embedding_instance).
Needs `scripts/build-llama-cpp.sh` (builds llama-cpp-python once); skipped without it.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
import pytest_asyncio

from services.workers.http import BackendHttp
from shared.client import new_id
from shared.embedded_nats import free_port, wait_for_port
from shared.messages import Done
from shared.processes import die_with_parent, stop_process
from tests.contract.harness import PUBLIC_MODEL, Backend, Harness
from tests.contract.tiny_gguf import EOS_TOKEN, N_EMBD, write_tiny_llama
from tests.support.processes import wait_until

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (scripts/build-llama-cpp.sh builds it)")
pytest.importorskip("gguf", reason="gguf is not installed (scripts/build-llama-cpp.sh installs it)")

LLAMA = Backend("llama_cpp_real", "llama_cpp", "none", "tiny")
MAX_TOKENS = 8
NO_EOS = {"logit_bias": {str(EOS_TOKEN): -100}, "max_tokens": MAX_TOKENS, "temperature": 0.8, "seed": 1}
USER = [{"role": "user", "content": "hello world"}]


class Server:
    def __init__(self, model: Path, log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", "tiny",
                 "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "512", "--n_threads", "1", *extra],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        self.log = log
        wait_for_port("127.0.0.1", self.port, 60, self.process)
        wait_until(self._ready, 60, "llama.cpp server to load the model")

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited:\n{self.log.read_text()[-3000:]}")
        try:
            return httpx.get(self.url + "/v1/models", timeout=1, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        stop_process(self.process, 10)


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    root = tmp_path_factory.mktemp("llama")
    model = write_tiny_llama(root / "tiny.gguf")
    started = {"chat": Server(model, root / "chat.log")}
    try:
        started["embed"] = Server(model, root / "embed.log", "--embedding", "true")
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest_asyncio.fixture
async def harnesses(nats_url: str, servers: dict[str, Server]) -> AsyncIterator[dict[str, Harness]]:
    nc = await nats.connect(nats_url)
    http = BackendHttp()
    made = {name: Harness(nc, LLAMA, None, f"llama{new_id()}", LLAMA.spec(server.url + "/v1", max_concurrency=1),
                          http) for name, server in servers.items()}
    for harness in made.values():
        await harness.start()
    try:
        yield made
    finally:
        for harness in made.values():
            await harness.stop()
        await http.aclose()
        await nc.close()


def content_chunks(chunks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]


async def test_stream_contract(harnesses: dict[str, Harness]) -> None:
    reply = await harnesses["chat"].call("chat", {"model": PUBLIC_MODEL, "messages": USER, "stream": True,
                                                  "stream_options": {"include_usage": True}, **NO_EOS}, stream=True)
    done = reply.done()
    chunks = reply.chunks
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "length" and set(finishes[:-1]) <= {None}
    assert {c["model"] for c in chunks} == {PUBLIC_MODEL}
    usage = chunks[-1]["usage"]  # made up by the adapter: this server sends none
    assert chunks[-1]["choices"] == [] and usage["completion_tokens"] == len(content_chunks(chunks)) > 0
    assert done.completion_tokens == usage["completion_tokens"]


async def test_chat_json(harnesses: dict[str, Harness]) -> None:
    result = (await harnesses["chat"].call("chat", {"model": PUBLIC_MODEL, "messages": USER, **NO_EOS})).result()
    assert result["object"] == "chat.completion" and result["model"] == PUBLIC_MODEL
    assert result["choices"][0]["finish_reason"] == "length"
    usage = result["usage"]  # the server's own count: it may count a token or two past max_tokens
    assert usage["completion_tokens"] >= MAX_TOKENS and usage["total_tokens"] == usage["prompt_tokens"] + usage[
        "completion_tokens"]


async def test_completions_json_and_stream(harnesses: dict[str, Harness]) -> None:
    body = {"model": PUBLIC_MODEL, "prompt": "the sky is", **NO_EOS}
    result = (await harnesses["chat"].call("completion", body)).result()
    assert result["object"] == "text_completion" and result["choices"][0]["finish_reason"] == "length"
    reply = await harnesses["chat"].call("completion", {**body, "stream": True}, stream=True)
    reply.done()
    assert [c["choices"][0]["finish_reason"] for c in reply.chunks if c["choices"]][-1] == "length"
    assert all("role" not in (c["choices"][0].get("delta") or {}) for c in reply.chunks if c["choices"])


async def test_concurrent_requests_queue_and_all_finish(harnesses: dict[str, Harness]) -> None:
    replies = await asyncio.gather(*(harnesses["chat"].call(
        "chat", {"model": PUBLIC_MODEL, "messages": USER, "stream": True, **NO_EOS}, stream=True) for _ in range(3)))
    assert all(isinstance(r.last, Done) for r in replies), [r.frames[-1] for r in replies]


async def test_embeddings_from_the_embedding_instance(harnesses: dict[str, Harness]) -> None:
    single = (await harnesses["embed"].call("embedding", {"model": PUBLIC_MODEL, "input": "hello"})).result()
    batch = (await harnesses["embed"].call("embedding", {"model": PUBLIC_MODEL, "input": ["a", "b"]})).result()
    assert len(single["data"]) == 1 and len(single["data"][0]["embedding"]) == N_EMBD
    assert [d["index"] for d in batch["data"]] == [0, 1]
    assert {len(d["embedding"]) for d in batch["data"]} == {N_EMBD}


async def test_model_list_and_health_probe(harnesses: dict[str, Harness], servers: dict[str, Server]) -> None:
    listing = await harnesses["chat"].models()
    assert listing.models == ("tiny",) and listing.error is None
    assert LLAMA.spec("http://h").probe_path == "/v1/models"
    async with httpx.AsyncClient(trust_env=False) as http:
        assert (await http.get(servers["chat"].url + "/v1/models")).status_code == 200
        assert (await http.get(servers["chat"].url + "/health")).status_code == 404
