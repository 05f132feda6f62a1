"""Backends' own load (services/workers/backend_load.py), the router's view of it
(services/router/load.py) and the strategies that use it (backend_load, least_loaded)."""

from __future__ import annotations

import random

import orjson

from services.router.load import LoadView
from services.router.strategies import Balancer, Candidate, rank
from services.simulator.engine import Engine, EngineSettings
from services.simulator.engine_wire import llamacpp_metrics, llamacpp_slots, ollama_ps, vllm_metrics
from services.workers.backend_load import BackendLoad, parse
from shared.messages import LoadReport


def busy_engine() -> Engine:
    e = Engine(EngineSettings(max_seqs=2, cache_tokens=100), random.Random(0))
    for name in "abc":
        e.arrive(name, ["one two three four"], 1, now=0)
    return e


def test_vllm_and_llamacpp_metrics_as_the_simulator_serves_them() -> None:
    load = busy_engine().load()
    assert parse("/metrics", 200, vllm_metrics(load, "m")) == BackendLoad(2, 1, 0.1)
    assert parse("/metrics", 200, llamacpp_metrics(load)) == BackendLoad(2, 1, 0.1)
    assert parse("/slots", 200, llamacpp_slots(load)) == BackendLoad(running=2)
    assert parse("/api/ps", 200, ollama_ps(("m",), "x", load)) == BackendLoad()


def test_samples_of_several_engines_add_up_and_the_older_kv_name_is_read() -> None:
    text = b"""# HELP vllm:num_requests_running x
vllm:num_requests_running{engine="0",model_name="a"} 3.0
vllm:num_requests_running{engine="1",model_name="a"} 2.0
vllm:num_requests_waiting{engine="0"} 4
vllm:gpu_cache_usage_perc{engine="0"} 0.25
vllm:gpu_cache_usage_perc{engine="1"} 0.5
"""
    assert parse("/metrics", 200, text) == BackendLoad(5, 4, 0.5)


def test_no_endpoint_or_none_of_the_names_is_no_load() -> None:
    assert parse("/metrics", 404, b"Not Found") is None
    assert parse("/metrics", 200, b"process_cpu_seconds_total 3\n") is None
    assert parse("/slots", 200, b"{not json") is None
    assert parse("/slots", 501, b"[]") is None


def report(worker: str, running: int | None, waiting: int | None = 0, kv: float | None = 0.0) -> LoadReport:
    return LoadReport(provider="p", worker_id=worker, in_flight=1, queued=0, capacity=4, queue_capacity=8, at=0,
                      backend_running=running, backend_waiting=waiting if running is not None else None,
                      backend_kv_usage=kv if running is not None else None)


def test_the_router_takes_the_freshest_backend_report_never_the_sum() -> None:
    view = LoadView()
    view.report(report("w1", 5, 1, 0.3), now=0.0)
    view.report(report("w2", 7, 2, 0.4), now=0.5)
    seen = view.load("p", now=0.6)
    assert seen is not None and (seen.backend_busy, seen.kv_usage) == (9, 0.4)
    view.placed("p", "w1", "attempt", now=0.7)
    assert (seen := view.load("p", now=0.7)) is not None and seen.backend_busy == 10
    quiet = LoadView()
    quiet.report(report("w1", None), now=0.0)
    assert (seen := quiet.load("p", now=0.1)) is not None and seen.backend_busy is None


def candidates() -> list[Candidate]:
    # "a": our workers see it idle, its backend is full of others' requests; "b": the reverse.
    return [Candidate("a", busy=0, backend_busy=12, kv_usage=0.9, capacity=4),
            Candidate("b", busy=3, backend_busy=3, kv_usage=0.1, capacity=4),
            Candidate("c")]


def test_backend_load_ranks_on_the_backends_queues_and_kv() -> None:
    assert [c.provider for c in rank("backend_load", Balancer(), "g", candidates())] == ["b", "a", "c"]


def test_least_loaded_counts_the_backends_load_when_present() -> None:
    assert [c.provider for c in rank("least_loaded", Balancer(), "g", candidates())] == ["b", "a", "c"]
    without = [Candidate("a", busy=0, capacity=4), Candidate("b", busy=3, capacity=4)]
    assert [c.provider for c in rank("least_loaded", Balancer(), "g", without)] == ["a", "b"]


def test_ollama_ps_parses_as_reachable_without_numbers() -> None:
    body = orjson.dumps({"models": []})
    assert parse("/api/ps", 200, body) == BackendLoad()
