"""The GraphQL interface through the whole stack: a simulator, a worker for two providers, the
router and the gateway, auth on. Provider states are written to the `aiub_health` bucket by the
test (no health service, so nothing overwrites them): the route query and a subscription see them.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from shared.health_view import open_bucket
from shared.messages import ProviderState, encode
from tests.support.processes import Stack, wait_until

MASTER = "master-" + uuid.uuid4().hex
MODEL = "qwen-coder"


@pytest.fixture(scope="module")
def stack(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    s = Stack(Path(tmp_path_factory.mktemp("graphql")), nats_url)
    s.env["AIUB_MASTER_KEY"] = MASTER
    sim = s.simulator("openai", ["backend-coder"])
    model = {MODEL: {"backend_model": "backend-coder", "cost_per_1k_tokens": 0.5}}
    s.write_config(
        providers={"coder": {"type": "vllm", "base_url": sim.url, "models": model},
                   "backup": {"type": "vllm", "base_url": sim.url, "models": model}},
        mappings={"exact_matches": {MODEL: {"provider": "coder"}}, "fallback_chains": {MODEL: ["backup"]}},
        runtime={"deadlines": {"first_token_s": 10, "idle_s": 5, "total_s": 30, "retry_budget": 1},
                 "cache": {"enabled": False}},
    )
    s.service("router")
    s.worker("coder", "backup")
    s.gateway("--state-dir", str(s.root / "state"))
    s.wait_serving(MODEL, MASTER)
    try:
        yield s
    finally:
        s.stop()


def _graphql(url: str, query: str, key: str | None = MASTER, **variables: Any) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(url + "/graphql", json={"query": query, "variables": variables}, headers=headers,
                      trust_env=False, timeout=20)


def _data(url: str, query: str, **variables: Any) -> dict[str, Any]:
    response = _graphql(url, query, **variables)
    assert response.status_code == 200, response.text
    body = response.json()
    assert "errors" not in body, body
    found: dict[str, Any] = body["data"]
    return found


async def _put_state(url: str, provider: str, state: str, seq: int) -> None:
    nc = await nats.connect(url)
    try:
        kv = await open_bucket(nc.jetstream())
        await kv.put(provider, encode(ProviderState(provider=provider, state=state, seq=seq, since=time.time(),
                                                    reason=f"test: {state}", open_until=4e9 if state ==
                                                    "unavailable" else None)))
    finally:
        await nc.close()


ROUTE = """query Route($model: String!) { route(model: $model) { serving next routedBy rule fallbackChain
           providers { provider routable fallback reason } } }"""


def test_routes_providers_and_a_health_transition_seen_by_a_subscription(stack: Stack) -> None:
    url = stack.gateway_url
    route = _data(url, ROUTE, model=MODEL)["route"]
    assert (route["serving"], route["next"], route["routedBy"]) == ("coder", "backup", "exact")
    assert route["fallbackChain"] == ["backup"] and route["rule"] == f"exact_matches.{MODEL}"
    assert [(p["provider"], p["routable"], p["fallback"]) for p in route["providers"]] == [
        ("coder", True, False), ("backup", True, True)]

    async def watch() -> tuple[dict[str, Any], float]:
        ws_url = url.replace("http://", "ws://") + "/graphql"
        async with connect(ws_url, subprotocols=["graphql-transport-ws"]) as ws:  # type: ignore[list-item]
            await ws.send(json.dumps({"type": "connection_init", "payload": {"authorization": f"Bearer {MASTER}"}}))
            assert json.loads(await ws.recv())["type"] == "connection_ack"
            await ws.send(json.dumps({"id": "1", "type": "subscribe", "payload": {
                "query": "subscription { healthTransitions(provider: \"coder\") { provider state previous reason "
                         "health { routable } } }"}}))
            await asyncio.sleep(0.2)  # the subscription is registered
            written = time.monotonic()
            await _put_state(stack.nats_url, "coder", "unavailable", seq=1)
            message = json.loads(await asyncio.wait_for(ws.recv(), 1.0))
            return message, time.monotonic() - written

    message, took = asyncio.run(watch())
    assert message["type"] == "next", message
    transition = message["payload"]["data"]["healthTransitions"]
    assert transition == {"provider": "coder", "state": "unavailable", "previous": None, "reason": "test: unavailable",
                          "health": {"routable": False}}
    assert took < 1.0

    route = _data(url, ROUTE, model=MODEL)["route"]
    assert (route["serving"], route["next"]) == ("backup", None)
    assert route["providers"][-1] == {"provider": "coder", "routable": False, "fallback": False,
                                      "reason": "unavailable"}
    providers = _data(url, "{ providers { name status health { state routable } } }")["providers"]
    assert {p["name"]: p["health"] for p in providers} == {"coder": {"state": "unavailable", "routable": False},
                                                          "backup": None}
    # The router obeys the same state: a request now goes to backup, and the gateway's ring has its record.
    answer = httpx.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {MASTER}"}, timeout=20,
                        trust_env=False, json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200 and answer.headers["x-aiub-provider"] == "backup"
    request_id = answer.headers["x-request-id"]
    query = "{ recentRequests(limit: 20) { requestId model status provider attempts { provider status } } }"
    wait_until(lambda: any(r["requestId"] == request_id for r in _data(url, query)["recentRequests"]), 5,
               "the request's record in recentRequests")
    record = next(r for r in _data(url, query)["recentRequests"] if r["requestId"] == request_id)
    assert record["model"] == MODEL and record["status"] == 200 and record["provider"] == "backup"
    asyncio.run(_put_state(stack.nats_url, "coder", "active", seq=2))
    wait_until(lambda: _data(url, ROUTE, model=MODEL)["route"]["serving"] == "coder", 5, "coder routable again")


def test_models_keys_and_usage(stack: Stack) -> None:
    url = stack.gateway_url
    models = _data(url, "{ models { name route { serving } } }")["models"]
    assert {"name": MODEL, "route": {"serving": "coder"}} in models
    created = httpx.post(url + "/admin/keys", headers={"authorization": f"Bearer {MASTER}"}, trust_env=False,
                         json={"name": "graphql-user", "rpm": 60}, timeout=20).json()
    response = _graphql(url, "{ keys { id name status rpm } }")
    assert created["key"] not in response.text
    listed = response.json()["data"]["keys"]
    assert {"id": created["id"], "name": "graphql-user", "status": "active", "rpm": 60} in listed
    one = _data(url, "query K($id: String!) { key(id: $id) { name } }", id=created["id"])
    assert one == {"key": {"name": "graphql-user"}}
    for _ in range(3):
        assert httpx.post(url + "/v1/chat/completions", headers={"authorization": f"Bearer {created['key']}"},
                          json={"model": MODEL, "messages": [{"role": "user", "content": "hi"}]},
                          trust_env=False, timeout=20).status_code == 200
    rows = _data(url, "query U($who: String) { usage(key: $who, groupBy: \"key,model\") { key model requests "
                      "totalTokens cost day } }", who=created["id"])["usage"]
    assert len(rows) == 1 and rows[0]["requests"] == 3 and rows[0]["day"] == "*" and rows[0]["totalTokens"] > 0
    bad = _graphql(url, "{ usage(since: \"yesterday\") { requests } }").json()
    assert "not a day" in bad["errors"][0]["message"]


def test_graphql_is_the_master_keys_alone(stack: Stack) -> None:
    url = stack.gateway_url
    secret = httpx.post(url + "/admin/keys", headers={"authorization": f"Bearer {MASTER}"}, trust_env=False,
                        json={"models": [MODEL]}, timeout=20).json()["key"]
    query = "{ providers { name } }"
    anonymous = _graphql(url, query, key=None)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["type"] == "authentication_error"
    assert _graphql(url, query, key="sk-aiub-000000000000_" + "0" * 64).status_code == 401
    virtual = _graphql(url, query, key=secret)
    assert virtual.status_code == 403 and virtual.json()["error"]["code"] == "admin_forbidden"
    assert httpx.get(url + "/graphql", params={"query": query}, trust_env=False, timeout=5).status_code == 401

    async def socket(payload: dict[str, Any], headers: dict[str, str] | None = None) -> int | None:
        ws_url = url.replace("http://", "ws://") + "/graphql"
        async with connect(ws_url, subprotocols=["graphql-transport-ws"],  # type: ignore[list-item]
                           additional_headers=headers) as ws:
            await ws.send(json.dumps({"type": "connection_init", "payload": payload}))
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), 5))
            except ConnectionClosed as e:
                return e.rcvd.code if e.rcvd else None
            return 0 if message["type"] == "connection_ack" else -1

    assert asyncio.run(socket({})) == 4403
    assert asyncio.run(socket({"authorization": f"Bearer {secret}"})) == 4403
    assert asyncio.run(socket({}, {"authorization": f"Bearer {secret}"})) == 4403
    assert asyncio.run(socket({}, {"authorization": f"Bearer {MASTER}"})) == 0


def test_auth_off_refuses_graphql(stack: Stack) -> None:
    off = Stack(stack.root / "auth-off", stack.nats_url)
    off.env.pop("AIUB_MASTER_KEY", None)
    off.config_dir = stack.config_dir
    try:
        off.gateway("--state-dir", str(stack.root / "state-off"))
        refused = _graphql(off.gateway_url, "{ providers { name } }", key=None)
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "admin_requires_master_key"
    finally:
        off.stop()


def test_an_abusive_query_is_refused(stack: Stack) -> None:
    """Each is answered with a GraphQL error and no data (tests/unit/test_graphql_limits.py shows
    no resolver runs)."""
    url = stack.gateway_url
    deep = "{ models { route { providers { provider } } } }"
    assert "errors" not in _graphql(url, deep).json()
    too_deep = "{ a { b { c { d { e { f { g { h } } } } } } } }"
    refused = _graphql(url, too_deep).json()
    assert refused["data"] is None and any("depth" in e["message"] for e in refused["errors"])
    aliases = "{ " + " ".join(f"a{i}: keys {{ id }}" for i in range(11)) + " }"
    refused = _graphql(url, aliases).json()
    assert refused["data"] is None and "aliases" in refused["errors"][0]["message"]
    fields = "{ " + "providers { name } " * 300 + "}"
    refused = _graphql(url, fields).json()
    assert refused["data"] is None and "tokens" in refused["errors"][0]["message"]
    large = _graphql(url, "query R($n: Int!) { recentRequests(limit: $n) { requestId } }", n=100_000).json()
    assert large["data"] is None and "limit 100000" in large["errors"][0]["message"]
    costly = _graphql(url, "{ usage(limit: 500) { day key model provider requests promptTokens completionTokens "
                           "totalTokens cost } recentRequests(limit: 500) { requestId model status provider "
                           "attempts { attempt provider workerId status error latencyS } } }").json()
    assert costly["data"] is None and "costs more than" in costly["errors"][0]["message"]


@pytest.mark.parametrize("body", [b"null", b"5", b'"{ models { name } }"'])
def test_a_body_that_is_json_but_not_an_object_is_a_400(stack: Stack, body: bytes) -> None:
    response = httpx.post(stack.gateway_url + "/graphql", content=body, trust_env=False, timeout=20,
                          headers={"authorization": f"Bearer {MASTER}", "content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert "JSON object" in response.text
    assert _graphql(stack.gateway_url, "{ models { name } }").status_code == 200


def test_the_gateway_imports_strawberry_only_when_graphql_is_called() -> None:
    # A second and 11 MB per gateway start (docs/benchmarks.md, footprint): the tests above show
    # the first call still works; this shows a gateway that is never asked does not pay.
    probe = "import sys, services.gateway.main; print(sorted(m for m in sys.modules if m.split('.')[0] in " \
            "('strawberry', 'graphql')))"
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert loaded.stdout.strip() == "[]", loaded.stdout
