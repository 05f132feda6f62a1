"""A backend's own account of its load, parsed from its load endpoint. Pure: (path, status, body) in.

Formats (the names are the engines' own; see services/simulator/engine_wire.py for examples):
- Prometheus text (`/metrics`) of vLLM: `vllm:num_requests_running`, `vllm:num_requests_waiting`,
  `vllm:kv_cache_usage_perc` (before V1: `vllm:gpu_cache_usage_perc`); of llama.cpp:
  `llamacpp:requests_processing`, `llamacpp:requests_deferred`, `llamacpp:kv_cache_usage_ratio`.
  Samples of one name with different labels (several engines, several models) are summed for
  counts; the KV use is the highest.
- llama.cpp `/slots`: a JSON array of slots; running = those `is_processing` (older builds say
  `state` 1). It has no queue: waiting is unknown.
- Ollama `/api/ps`: the loaded models only, no load. Parsed as "reachable, no numbers" (None
  fields), so it never poses as an idle backend.

A non-200, an unreadable body or a body with none of the names gives None: the backend has no
usable load endpoint, and the worker reports no backend load (the router then ranks on its own
counts).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

RUNNING = ("vllm:num_requests_running", "llamacpp:requests_processing")
WAITING = ("vllm:num_requests_waiting", "llamacpp:requests_deferred")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{[^}]*\})?\s+(\S+)")
KV = ("vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc", "llamacpp:kv_cache_usage_ratio")


@dataclass(frozen=True, slots=True)
class BackendLoad:
    running: int | None = None  # sequences the engine is running
    waiting: int | None = None  # requests queued inside the engine
    kv_usage: float | None = None  # 0..1


def parse(path: str, status: int, body: bytes) -> BackendLoad | None:
    if status != 200:
        return None
    try:
        if path.rstrip("/").endswith("/slots"):
            return _slots(json.loads(body))
        if path.rstrip("/").endswith("/api/ps"):
            return BackendLoad() if isinstance(json.loads(body).get("models"), list) else None
        return prometheus(body.decode("utf-8", "replace"))
    except (ValueError, AttributeError):
        return None


def prometheus(text: str) -> BackendLoad | None:
    values: dict[str, list[float]] = {}
    for line in text.splitlines():
        sample = _SAMPLE.match(line)
        if sample is None:
            continue
        try:
            value = float(sample.group(2))
        except ValueError:
            continue
        if value == value:  # not NaN
            values.setdefault(sample.group(1), []).append(value)

    def count(names: tuple[str, ...]) -> int | None:
        found = next((values[n] for n in names if n in values), None)
        return None if found is None else max(0, round(sum(found)))

    kv_found = next((values[n] for n in KV if n in values), None)
    load = BackendLoad(running=count(RUNNING), waiting=count(WAITING),
                       kv_usage=None if kv_found is None else min(1.0, max(0.0, max(kv_found))))
    return None if load == BackendLoad() else load


def _slots(slots: object) -> BackendLoad | None:
    if not isinstance(slots, list) or not all(isinstance(s, dict) for s in slots):
        return None
    running = sum(1 for s in slots if s.get("is_processing") is True or s.get("state") == 1)
    return BackendLoad(running=running)
