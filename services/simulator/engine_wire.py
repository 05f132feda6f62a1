"""An engine's load in the formats real engines serve it. Pure: an `EngineLoad` in, bytes out.

- vLLM `GET /metrics` (Prometheus text, docs.vllm.ai "Production Metrics"): gauges
  `vllm:num_requests_running`, `vllm:num_requests_waiting`, `vllm:kv_cache_usage_perc` (0..1;
  releases before V1 named it `vllm:gpu_cache_usage_perc`, served too), counters
  `vllm:prefix_cache_queries_total` / `vllm:prefix_cache_hits_total` (in tokens), each labelled
  `model_name`.
- llama.cpp `GET /metrics` (server README, with `--metrics`): gauges
  `llamacpp:requests_processing`, `llamacpp:requests_deferred`, `llamacpp:kv_cache_usage_ratio`,
  `llamacpp:kv_cache_tokens`, unlabelled. `GET /slots`: a JSON array, one object per slot with
  `id`, `id_task` (-1 when idle), `n_ctx`, `speculative`, `is_processing`.
- Ollama `GET /api/ps`: `{"models": [{name, model, size, digest, details, expires_at,
  size_vram, context_length}]}`; it says which models are loaded, not how busy they are.
"""

from __future__ import annotations

import hashlib

import orjson

from services.simulator.engine import EngineLoad

PROMETHEUS = b"text/plain; version=0.0.4; charset=utf-8"
JSON = b"application/json"
_MODEL_BYTES = 4_920_753_328


def _metric(name: str, kind: str, help_text: str, value: float, labels: str = "") -> str:
    return f"# HELP {name} {help_text}\n# TYPE {name} {kind}\n{name}{labels} {float(value)}\n"


def vllm_metrics(load: EngineLoad, model: str) -> bytes:
    labels = '{model_name="' + model.replace("\\", "\\\\").replace('"', '\\"') + '"}'
    return "".join((
        _metric("vllm:num_requests_running", "gauge", "Number of requests in model execution batches.",
                load.running, labels),
        _metric("vllm:num_requests_waiting", "gauge", "Number of requests waiting to be processed.",
                load.waiting, labels),
        _metric("vllm:kv_cache_usage_perc", "gauge", "KV-cache usage. 1 means 100 percent usage.",
                load.kv_usage, labels),
        _metric("vllm:gpu_cache_usage_perc", "gauge", "GPU KV-cache usage. 1 means 100 percent usage.",
                load.kv_usage, labels),
        _metric("vllm:prefix_cache_queries_total", "counter",
                "Prefix cache queries, in terms of number of queried tokens.", load.prefix_queries, labels),
        _metric("vllm:prefix_cache_hits_total", "counter",
                "Prefix cache hits, in terms of number of cached tokens.", load.prefix_hits, labels),
    )).encode()


def llamacpp_metrics(load: EngineLoad) -> bytes:
    return "".join((
        _metric("llamacpp:kv_cache_usage_ratio", "gauge", "KV-cache usage. 1 means 100 percent usage.",
                load.kv_usage),
        _metric("llamacpp:kv_cache_tokens", "gauge", "KV-cache tokens.", round(load.kv_usage * load.cache_tokens)),
        _metric("llamacpp:requests_processing", "gauge", "Number of requests processing.", load.running),
        _metric("llamacpp:requests_deferred", "gauge", "Number of requests deferred.", load.waiting),
    )).encode()


def llamacpp_slots(load: EngineLoad) -> bytes:
    n_ctx = load.cache_tokens // load.max_seqs
    return orjson.dumps([{"id": i, "id_task": i if i < load.running else -1, "n_ctx": n_ctx,
                          "speculative": False, "is_processing": i < load.running}
                         for i in range(load.max_seqs)])


def ollama_ps(models: tuple[str, ...], expires_at: str, load: EngineLoad) -> bytes:
    out = []
    for m in models:
        name = m if ":" in m else f"{m}:latest"
        out.append({"name": name, "model": name, "size": _MODEL_BYTES,
                    "digest": hashlib.sha256(name.encode()).hexdigest(),
                    "details": {"parent_model": "", "format": "gguf", "family": name.split(":")[0],
                                "families": [name.split(":")[0]], "parameter_size": "unknown",
                                "quantization_level": "Q4_K_M"},
                    "expires_at": expires_at, "size_vram": _MODEL_BYTES,
                    "context_length": load.cache_tokens // load.max_seqs})
    return orjson.dumps({"models": out})
