"""`aiub status`: where it finds NATS, and what it prints."""

from __future__ import annotations

import json
from pathlib import Path

from cli.status import Snapshot, as_dict, find_nats_url, render_table
from shared.config import read_environment
from shared.health_view import Heartbeat
from shared.messages import ProviderState

NOW = 1_800_000_000.0


def snapshot(heartbeat_age_s: float | None = 1.0) -> Snapshot:
    states = (
        ProviderState(provider="ollama", state="active", since=NOW - 3600, probe_latency_s=0.012,
                      reason="health service started"),
        ProviderState(provider="vllm", state="unavailable", since=NOW - 30, open_until=NOW + 270, seq=4,
                      admit_fraction=0.0, reason="3 upstream failures within 60s, the last: HTTP 500 on m"),
        ProviderState(provider="llama_cpp", state="cooldown", since=NOW - 5, admit_fraction=0.25),
    )
    heartbeat = None if heartbeat_age_s is None else Heartbeat(leader="host-1-abc", at=NOW - heartbeat_age_s)
    return Snapshot("nats://127.0.0.1:4222", states, heartbeat, None)


def test_an_explicit_url_wins(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(json.dumps({"nats_url": "nats://127.0.0.1:5000"}))
    assert find_nats_url("nats://elsewhere:4222", tmp_path, "nats://from-env:4222") == "nats://elsewhere:4222"


def test_the_stack_file_of_aiub_up_is_found(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(json.dumps({"nats_url": "nats://127.0.0.1:5000", "gateway": "x"}))
    assert find_nats_url(None, tmp_path, "nats://from-env:4222") == "nats://127.0.0.1:5000"


def test_without_a_stack_file_the_environment_or_none(tmp_path: Path) -> None:
    # $NATS_URL as cli/main.py read it (shared/config/environment.py)
    assert find_nats_url(None, tmp_path, read_environment({"NATS_URL": "nats://from-env:4222"}).nats_url) \
        == "nats://from-env:4222"
    (tmp_path / "stack.json").write_text("not json")
    assert find_nats_url(None, tmp_path, read_environment({}).nats_url) is None  # never a default URL
    assert find_nats_url(None, None, None) is None  # no stack found


def test_the_table_shows_state_since_reason_and_probe_latency() -> None:
    lines = render_table(snapshot(), NOW).splitlines()
    assert lines[0] == "health service: leader host-1-abc, heartbeat 1s ago"
    assert lines[1].split() == ["PROVIDER", "STATE", "SINCE", "ADMIT", "PROBE", "REASON"]
    ollama, vllm, llama = lines[2:]
    assert ollama.split()[:6] == ["ollama", "active", "1.0h", "ago", "1", "12"]
    assert "unavailable (270s left)" in vllm and "30s ago" in vllm and vllm.endswith("HTTP 500 on m")
    assert "cooldown" in llama and "0.25" in llama


def test_a_silent_health_service_is_reported_stale() -> None:
    assert "STALE" in render_table(snapshot(heartbeat_age_s=60), NOW).splitlines()[0]
    assert "STALE" in render_table(snapshot(heartbeat_age_s=None), NOW).splitlines()[0]
    assert as_dict(snapshot(heartbeat_age_s=60), NOW)["stale"] is True


def test_json_has_every_field_and_routability() -> None:
    data = as_dict(snapshot(), NOW)
    assert data["leader"] == "host-1-abc" and data["stale"] is False and data["heartbeat_age_s"] == 1.0
    by_name = {p["provider"]: p for p in data["providers"]}
    assert by_name["vllm"]["routable"] is False and by_name["vllm"]["open_until"] == NOW + 270
    assert by_name["ollama"]["probe_latency_s"] == 0.012 and by_name["llama_cpp"]["admit_fraction"] == 0.25
    json.dumps(data)


def test_no_bucket_and_no_states_say_so() -> None:
    assert "has not run" in render_table(Snapshot("nats://x:1", (), None, None, bucket_found=False), NOW)
    assert render_table(Snapshot("nats://x:1", (), Heartbeat(leader="h", at=NOW), None), NOW).endswith(
        "no provider states yet")
