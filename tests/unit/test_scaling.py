"""`aiub up --scale`: which replicas each service gets, and the refusals that name the fix."""

from __future__ import annotations

import pytest

from cli.up.scaling import ScaleError, parse_scale, replica_names

PROVIDERS = ["ollama", "vllm"]


def test_nothing_to_scale_means_one_of_each() -> None:
    assert parse_scale("", PROVIDERS) == {}
    assert replica_names("router", 1) == ["router"]  # the same name and log file as without --scale


def test_services_and_provider_workers_by_either_name() -> None:
    assert parse_scale("router=2, worker.ollama=3,worker-vllm=2", PROVIDERS) == {
        "router": 2, "worker-ollama": 3, "worker-vllm": 2}
    assert parse_scale("worker=2,health=2", PROVIDERS) == {"worker-ollama": 2, "worker-vllm": 2, "health": 2}
    assert replica_names("worker-ollama", 3) == ["worker-ollama-1", "worker-ollama-2", "worker-ollama-3"]


@pytest.mark.parametrize(("text", "message"), [
    ("router", "write SERVICE=N"),
    ("router=two", "not a number"),
    ("router=0", "from 1 to 64"),
    ("router=65", "from 1 to 64"),
    ("gateway=2", "load balancer"),
    ("worker.tgi=2", "no active provider 'tgi' (active: ollama, vllm)"),
    ("cache=2", "scalable services are"),
    ("worker=2,worker.ollama=3", "scaled twice"),
])
def test_refusals_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ScaleError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_scale(text, PROVIDERS)
