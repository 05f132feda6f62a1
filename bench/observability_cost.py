"""What observability costs per attempt in a worker, in CPU microseconds.

Measures, in this process, what a worker adds for each attempt after its last frame has gone
(so none of it delays a token): the Prometheus updates from the Outcome, the JSON log line,
binding the request id into the log context, and the NATS header that carries the id.

    python bench/observability_cost.py            # 20 000 rounds
    python bench/observability_cost.py -n 100000

Compare with the worker's whole CPU per request from `bench/run.py` (hundreds of µs).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog
from prometheus_client import CollectorRegistry

from services.workers.telemetry import WorkerTelemetry
from shared import logs, tracing
from shared.messages import InferenceRequest, Outcome
from shared.metrics import ProviderMetrics


def per_call_us(fn: Callable[[], object], rounds: int) -> float:
    for _ in range(min(1000, rounds)):
        fn()
    started = time.process_time()
    for _ in range(rounds):
        fn()
    return (time.process_time() - started) / rounds * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", "--rounds", type=int, default=20_000)
    rounds = parser.parse_args().rounds
    with open(os.devnull, "w") as sink:
        logs.configure("worker", "INFO", stream=sink)
        telemetry = WorkerTelemetry(ProviderMetrics(CollectorRegistry()), logs.get("worker"))
        outcome = Outcome(provider="ollama", model="llama3.1:8b", request_id="rU81iOL9fPd5p1jElfthsa",
                          attempt="rU81iOL9fPd5p1jElfthuq", worker_id="w6d7IIM5w6z38UraQOU416S", kind="ok",
                          latency_s=0.1, ttft_s=0.02, prompt_tokens=12, completion_tokens=64, at=time.time())
        request = InferenceRequest(id="rU81iOL9fPd5p1jElfthsa", attempt="a", kind="chat", model="llama3.1:8b",
                                   body={}, client_request_id="req_abc123")

        def bind() -> None:
            tracing.bind(tracing.request_id(request), provider="ollama")
            structlog.contextvars.clear_contextvars()

        rows = [
            ("metrics: counters + histograms from the Outcome", per_call_us(lambda: telemetry.record(outcome), rounds)),
            ("log: one JSON line (attempt_finished)", per_call_us(lambda: telemetry.log_outcome(outcome), rounds)),
            ("log context: bind the request id (and clear)", per_call_us(bind, rounds)),
            ("NATS header dict for the request id", per_call_us(lambda: tracing.headers(request), rounds)),
        ]
    total = sum(us for _, us in rows)
    print(f"| per attempt, in one worker ({rounds} rounds) | CPU µs |\n|---|---:|")
    for label, us in rows:
        print(f"| {label} | {us:.1f} |")
    print(f"| **total** | **{total:.1f}** |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
