"""The shell widgets (wth-widgets/litellm/bin), each run with bash over fixture files: `aiub` is a
stub that prints a fixed `status --json`, and the /metrics endpoints and the gateway are file://
URLs (curl reads them like HTTP), so the numbers on screen are known exactly."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

BIN = Path(__file__).resolve().parents[2] / "wth-widgets" / "litellm" / "bin"


def status(now: float) -> dict[str, object]:
    """`aiub status --json` as of `now`: ages are taken when the widget runs, not at import."""
    return {
        "nats_url": "nats://127.0.0.1:4222", "leader": "vm-1", "heartbeat_age_s": 0.4, "stale": False,
        "providers": [
            {"provider": "ollama", "state": "active", "since": now - 150, "reason": "probe passed",
             "admit_fraction": 1.0, "probe_latency_s": 0.004, "routable": True},
            {"provider": "vllm", "state": "unavailable", "since": now - 630, "reason": "3 failures within 60 s",
             "admit_fraction": 0.0, "probe_latency_s": None, "routable": False},
            {"provider": "llama_cpp_python", "state": "degraded", "since": now - 7200, "reason": "slow probe",
             "admit_fraction": 1.0, "probe_latency_ms": 2500, "routable": True},
        ],
    }


WORKERS = """\
# HELP provider_requests_total Attempts served, by provider and outcome
# TYPE provider_requests_total counter
provider_requests_total{provider="ollama",outcome="ok"} 8.0
provider_requests_total{provider="ollama",outcome="server_error"} 2.0
provider_requests_total{provider="vllm",outcome="ok"} 10.0
provider_errors_total{provider="ollama",kind="server_error"} 2.0
provider_latency_seconds_bucket{provider="ollama",phase="total",le="0.1"} 2.0
provider_latency_seconds_bucket{provider="ollama",phase="total",le="0.25"} 8.0
provider_latency_seconds_bucket{provider="ollama",phase="total",le="0.5"} 8.0
provider_latency_seconds_bucket{provider="ollama",phase="total",le="+Inf"} 8.0
provider_latency_seconds_count{provider="ollama",phase="total"} 8.0
provider_latency_seconds_sum{provider="ollama",phase="total"} 1.2
provider_latency_seconds_bucket{provider="vllm",phase="total",le="0.5"} 0.0
provider_latency_seconds_bucket{provider="vllm",phase="total",le="1.0"} 5.0
provider_latency_seconds_bucket{provider="vllm",phase="total",le="2.5"} 10.0
provider_latency_seconds_bucket{provider="vllm",phase="total",le="+Inf"} 10.0
provider_latency_seconds_count{provider="vllm",phase="total"} 10.0
provider_latency_seconds_sum{provider="vllm",phase="total"} 15.0
request_queue_size{provider="ollama"} 1.0
request_queue_size{provider="vllm"} 2.0
"""
ROUTER = """\
router_routing_decisions_total{strategy="exact_match"} 15.0
router_routing_decisions_total{strategy="pattern_match"} 5.0
router_load_balance_distribution_total{provider="ollama"} 10.0
router_load_balance_distribution_total{provider="vllm"} 10.0
router_fallback_triggered_total{original_provider="vllm"} 3.0
"""
HEALTH = """\
provider_availability{provider="ollama"} 1.0
provider_availability{provider="vllm"} 0.0
"""
GATEWAY = """\
active_connections 4.0
cache_hits_total 5.0
cache_misses_total 15.0
cache_errors_total 1.0
cache_hit_rate 0.25
total_throughput_tokens_per_second 321.5
"""
FAKE_AIUB = """#!/usr/bin/env bash
case $1 in
  status) cat "$(dirname "$0")/status.json" ;;
  logs) echo "aiub logs called with: $*" ;;
  *) exit 2 ;;
esac
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("widgets")
    (root / "status.json").write_text(json.dumps(status(time.time())))
    fake = root / "aiub"
    fake.write_text(FAKE_AIUB)
    fake.chmod(0o755)
    urls = []
    for name, text in (("workers", WORKERS), ("router", ROUTER), ("health", HEALTH), ("gateway", GATEWAY)):
        (root / f"{name}.prom").write_text(text)
        urls.append(f"file://{root}/{name}.prom")
    urls.append(f"file://{root}/missing.prom")  # an endpoint that does not answer
    gateway = root / "gw"
    gateway.mkdir()
    (gateway / "ready").write_text('{"ready": true, "nats_connected": true}')
    state = root / "state"
    state.mkdir()
    (state / "stack.json").write_text(json.dumps({"nats_url": "nats://127.0.0.1:4222"}))
    return {"PATH": os.environ["PATH"], "NO_COLOR": "1", "AIUB": str(fake), "AIUB_STATE_DIR": str(state),
            "AIUB_METRICS": " ".join(urls), "AIUB_GATEWAY": f"file://{gateway}"}


def run(env: dict[str, str], script: str, *args: str, expect_rc: int = 0) -> list[str]:
    done = subprocess.run(["bash", str(BIN / script), *args], env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == expect_rc, done.stderr + done.stdout
    assert done.stderr == ""
    return [" ".join(line.split()) for line in done.stdout.splitlines()]  # columns collapse to single spaces


def test_health_status(env: dict[str, str]) -> None:
    lines = run(env, "health-status.sh")
    assert lines[0].startswith("aiub health ")
    assert lines[1:] == [
        "🟢 gateway ready (" + env["AIUB_GATEWAY"] + ")",
        "🟢 health leader vm-1, heartbeat 0.4s ago",
        "🟡 providers 2/3 routable (down: vllm)",
        "🔴 metrics 4/5 endpoints up",
    ]


def test_providers_overview(env: dict[str, str]) -> None:
    lines = run(env, "providers-overview.sh")
    assert lines[1] == "PROVIDER STATE SINCE ADMIT PROBE REASON"
    assert lines[2:] == [
        "🟢 ollama active 2m 1 4 ms probe passed",
        "🔴 vllm unavailable 10m 0 - 3 failures within 60 s",
        "🟡 llama_cpp_python degraded 2.0h 1 2500 ms slow probe",
    ]


def test_metrics_sampler(env: dict[str, str]) -> None:
    lines = run(env, "litellm-metrics.sh")
    assert lines[1].startswith("endpoints 4/5 up (down: file://") and lines[1].endswith("missing.prom)")
    assert lines[2] == "active_connections 4 request_queue_size 3 total_throughput_tokens_per_second 321.5"
    assert lines[3] == "PROVIDER REQUESTS ERRORS TTFT p95 p95 avg ROUTED"
    assert lines[4] == "ollama 10 2 - 240 ms 150 ms 10"
    assert lines[5] == "vllm 10 0 - 2350 ms 1500 ms 10"
    assert lines[6] == "routing decisions: exact_match 15 pattern_match 5"
    assert lines[7] == "fallbacks from: vllm 3"
    assert lines[8] == "provider_availability 0: vllm"


def test_cache_performance(env: dict[str, str]) -> None:
    lines = run(env, "cache-performance.sh")
    assert lines[1:] == ["hits 5 misses 15 hit rate 25.0% store errors (bypassed) 1", "cache_hit_rate gauge 0.25"]


def test_provider_score_ranks_fast_and_reliable_first(env: dict[str, str]) -> None:
    lines = run(env, "provider-score.sh")
    assert lines[1:] == [
        "PROVIDER SCORE SUCCESS avg p95 REQUESTS",
        "ollama 0.92 80.0% 150 ms 240 ms 10",  # 0.4 x 1 (fastest) + 0.4 x 0.8 + 0.2
        "vllm 0.64 100.0% 1500 ms 2350 ms 10",  # 0.4 x 0.1 + 0.4 x 1 + 0.2
    ]


def test_logs_passes_its_options_to_aiub_logs(env: dict[str, str]) -> None:
    lines = run(env, "litellm-logs.sh", "--errors", "--request", "req_abc123")
    assert lines[1] == (f"aiub logs called with: logs --state-dir {env['AIUB_STATE_DIR']} -n 20 --level warning "
                        "--request req_abc123")


def test_detailed_status(env: dict[str, str]) -> None:
    lines = run(env, "litellm-status.sh")
    assert lines[1] == f"stack NATS nats://127.0.0.1:4222 gateway {env['AIUB_GATEWAY']} state {env['AIUB_STATE_DIR']}"
    assert lines[2] == 'gateway /ready {"ready":true,"nats_connected":true}'
    assert sum(line.startswith("up file://") for line in lines) == 4
    assert sum(line.startswith("DOWN file://") for line in lines) == 1
    assert lines[-4:] == ["providers (leader vm-1)", "🟢 ollama active admit 1 probe passed",
                          "🔴 vllm unavailable admit 0 3 failures within 60 s",
                          "🟡 llama_cpp_python degraded admit 1 slow probe"]


def test_a_stack_that_is_down_is_reported_not_crashed(env: dict[str, str], tmp_path: Path) -> None:
    broken = {**env, "AIUB": "false", "AIUB_METRICS": f"file://{tmp_path}/none.prom",
              "AIUB_GATEWAY": f"file://{tmp_path}"}
    lines = run(broken, "health-status.sh")
    assert lines[1:] == [f"🔴 gateway NOT ready (file://{tmp_path})",
                         "🔴 health cannot read provider states (aiub status failed)", "🔴 metrics 0/1 endpoints up"]
    assert run(broken, "providers-overview.sh", expect_rc=1)[0].startswith("cannot read provider states")
    assert run(broken, "provider-score.sh", expect_rc=1)[-1].startswith("no provider metrics yet")


def test_without_AIUB_set_the_repos_own_aiub_runs(env: dict[str, str], tmp_path: Path) -> None:
    plain = {**env, "PATH": "/usr/bin:/bin", "AIUB_STATE_DIR": str(tmp_path / "no-stack")}
    del plain["AIUB"]
    done = subprocess.run(["bash", str(BIN / "litellm-logs.sh")], env=plain, capture_output=True, text=True,
                          timeout=60)
    assert "aiub logs: no log directory" in done.stderr  # the real `aiub logs` answered


def test_run_from_elsewhere_a_widget_finds_the_stack_aiub_up_recorded(env: dict[str, str], tmp_path: Path) -> None:
    """No AIUB_STATE_DIR, no .aiub here: the pointer `aiub up` writes names the state dir."""
    from cli import stack_dir

    recorded = {**env, "HOME": str(tmp_path / "home")}
    del recorded["AIUB_STATE_DIR"]
    stack_dir.record(Path(env["AIUB_STATE_DIR"]), stack_dir.pointer_from(recorded))
    done = subprocess.run(["bash", str(BIN / "litellm-status.sh")], env=recorded, cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"state {env['AIUB_STATE_DIR']}" in " ".join(done.stdout.split())


def test_with_no_stack_found_every_widget_says_so_in_grey_never_green(env: dict[str, str], tmp_path: Path) -> None:
    nowhere = {"PATH": env["PATH"], "AIUB": env["AIUB"], "HOME": str(tmp_path / "home"), "FORCE_COLOR": "1"}
    for script in ("health-status.sh", "providers-overview.sh", "litellm-status.sh", "litellm-metrics.sh",
                   "cache-performance.sh", "provider-score.sh", "litellm-logs.sh"):
        done = subprocess.run(["bash", str(BIN / script)], env=nowhere, cwd=tmp_path, capture_output=True,
                              text=True, timeout=30)
        assert done.returncode == 1, script
        assert "\x1b[2m⚪ no stack found: start one with aiub up" in done.stdout, script  # dim
        assert "🟢" not in done.stdout and "\x1b[32m" not in done.stdout, script


def test_no_providers_reported_is_grey_not_green(env: dict[str, str], tmp_path: Path) -> None:
    empty = tmp_path / "aiub"
    empty.write_text('#!/usr/bin/env bash\necho \'{"stale": false, "leader": "vm-1", "heartbeat_age_s": 0.2, '
                     '"providers": []}\'\n')
    empty.chmod(0o755)
    lines = run({**env, "AIUB": str(empty)}, "health-status.sh")
    assert "⚪ providers none reported yet" in lines
    assert not any("providers 0/0" in line for line in lines)
