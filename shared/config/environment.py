"""What aiub takes from its process environment besides config: read once, by the command's
entry point (cli/main.py), into a typed object that is passed on."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Environment:
    nats_url: str | None = None  # NATS_URL: the bus when --nats names none
    metrics_port: int | None = None  # AIUB_METRICS_PORT: how `aiub up` and compose assign /metrics ports
    metrics_host: str | None = None  # AIUB_METRICS_HOST: the /metrics address (compose: 0.0.0.0)
    state_dir: str | None = None  # AIUB_STATE_DIR: the stack `aiub status`/`dashboard` read (cli/stack_dir.py)
    xdg_state_home: str | None = None  # XDG_STATE_HOME and HOME: where the pointer to the running
    home: str | None = None  # stack lives (cli/stack_dir.pointer_file)
    # OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, else OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces (OTLP's
    # rule): where the services export spans (shared/spans.py); unset, tracing is off and costs nothing
    otlp_traces_url: str | None = None


def read_environment(environ: Mapping[str, str]) -> Environment:
    port = environ.get("AIUB_METRICS_PORT")
    return Environment(nats_url=environ.get("NATS_URL") or None, metrics_port=int(port) if port else None,
                       metrics_host=environ.get("AIUB_METRICS_HOST") or None,
                       state_dir=environ.get("AIUB_STATE_DIR") or None,
                       xdg_state_home=environ.get("XDG_STATE_HOME") or None, home=environ.get("HOME") or None,
                       otlp_traces_url=_otlp_traces_url(environ))


def _otlp_traces_url(environ: Mapping[str, str]) -> str | None:
    traces = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if traces:
        return traces
    base = environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    return base.rstrip("/") + "/v1/traces" if base else None
