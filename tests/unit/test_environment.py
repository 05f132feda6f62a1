"""What cli/main.py reads from the process environment, once (shared/config/environment.py)."""

from __future__ import annotations

from pathlib import Path

from shared.config import Environment, read_environment

ROOT = Path(__file__).resolve().parents[2]


def test_every_variable_is_read_and_an_empty_one_is_unset() -> None:
    assert read_environment({
        "NATS_URL": "nats://h:1", "AIUB_METRICS_PORT": "9464", "AIUB_METRICS_HOST": "0.0.0.0",
        "AIUB_STATE_DIR": "/s", "XDG_STATE_HOME": "/x", "HOME": "/h", "OTHER": "ignored",
    }) == Environment(nats_url="nats://h:1", metrics_port=9464, metrics_host="0.0.0.0", state_dir="/s",
                      xdg_state_home="/x", home="/h")
    assert read_environment({"NATS_URL": "", "AIUB_METRICS_HOST": "", "HOME": ""}) == Environment()


def test_services_take_the_metrics_host_from_the_caller_not_the_environment() -> None:
    assert "environ" not in (ROOT / "shared" / "metrics.py").read_text()
    for service in ("router", "health", "workers"):
        assert "metrics_host" in (ROOT / "services" / service / "main.py").read_text(), service


def test_the_otlp_traces_url_follows_otlps_rule() -> None:
    assert read_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}).otlp_traces_url == \
        "http://c:4318/v1/traces"
    assert read_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
                             "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x"}).otlp_traces_url == "http://t/x"
    assert read_environment({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}).otlp_traces_url is None
