"""The simulator's Anthropic flavor and its credentials checks over real sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import orjson
import pytest_asyncio

from services.simulator.knobs import Knobs
from services.simulator.server import Simulator, SimulatorSettings, start_simulator

KEY = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
BODY = {"model": "claude-sonnet-4-20250514", "max_tokens": 100, "messages": [{"role": "user", "content": "hi"}]}


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[Simulator]:
    settings = SimulatorSettings("anthropic", knobs=Knobs(tokens=3), api_key="sk-ant-test")
    async with await start_simulator(settings) as s:
        yield s


async def test_messages_json_stream_and_models(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url, headers=KEY, timeout=5) as http:
        whole = (await http.post("/v1/messages", json=BODY)).json()
        assert whole["content"] == [{"type": "text", "text": "tok0 tok1 tok2 "}] and whole["type"] == "message"
        async with http.stream("POST", "/v1/messages", json={**BODY, "stream": True}) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            raw = await response.aread()
        kinds = [line[7:] for line in raw.decode().splitlines() if line.startswith("event: ")]
        assert kinds[0] == "message_start" and kinds[-1] == "message_stop" and kinds.count("content_block_delta") == 3
        models = (await http.get("/v1/models")).json()
        assert [m["id"] for m in models["data"]] == ["claude-sonnet-4-20250514", "claude-3-5-haiku-20241022"]


async def test_credentials_version_and_errors_in_anthropic_shape(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url, timeout=5) as http:
        missing = await http.post("/v1/messages", json=BODY, headers={"anthropic-version": "2023-06-01"})
        assert missing.status_code == 401 and missing.json()["error"]["type"] == "authentication_error"
        wrong = await http.post("/v1/messages", json=BODY, headers={**KEY, "x-api-key": "nope"})
        assert wrong.status_code == 401
        unversioned = await http.post("/v1/messages", json=BODY, headers={"x-api-key": "sk-ant-test"})
        assert unversioned.status_code == 400 and "anthropic-version" in unversioned.json()["error"]["message"]
        unknown = await http.post("/v1/messages", json={**BODY, "model": "gpt-4"}, headers=KEY)
        assert unknown.status_code == 404 and unknown.json() == {
            "type": "error", "error": {"type": "not_found_error", "message": "model: gpt-4"}}
        overloaded = await http.post("/v1/messages", headers=KEY, json={
            **BODY, "simulator": {"error_rate": 1, "error_status": 529}})
        assert overloaded.status_code == 529 and overloaded.json()["error"]["type"] == "overloaded_error"
        assert (await http.get("/_sim/stats")).status_code == 200  # control routes need no key


async def test_bearer_key_on_openai_and_ollama_flavors() -> None:
    for flavor, path, body in [("openai", "/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}]}),
                               ("ollama", "/api/chat", {"model": "llama3.1:8b", "stream": False,
                                                        "messages": [{"role": "user", "content": "x"}]})]:
        async with await start_simulator(SimulatorSettings(flavor, api_key="k1")) as s:  # type: ignore[arg-type]
            async with httpx.AsyncClient(base_url=s.url, timeout=5) as http:
                assert (await http.post(path, json=body)).status_code == 401
                ok = await http.post(path, json=body, headers={"authorization": "Bearer k1"})
                assert ok.status_code == 200, ok.text


async def test_cancelled_anthropic_stream_counts_aborted(sim: Simulator) -> None:
    async with httpx.AsyncClient(base_url=sim.url, headers=KEY, timeout=5) as http:
        async with http.stream("POST", "/v1/messages", json={
                **BODY, "stream": True, "simulator": {"tokens": 1000, "itl_ms": 10}}) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: ") and orjson.loads(line[6:])["type"] == "content_block_delta":
                    break
    give_up = time.monotonic() + 2
    while sim.stats["aborted"] < 1:
        assert time.monotonic() < give_up, sim.stats
        await asyncio.sleep(0.01)
