"""Three simulated backends speaking three APIs, as the SDK and front-door tests put them behind a stack.

Ollama's native API serves `llama3.1:8b`, vLLM's OpenAI API `qwen-coder`, Anthropic's Messages
API `claude-sonnet` (it demands `anthropic_key`, which the worker reads from `key_env`). Each
simulator answers `EXPECTED` (16 tokens) and, when a request offers tools, calls one
(`get_weather` with `{"city": "tok0"}`). A test adds its own providers and names to what
`three_backends` returns before writing the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.support.processes import Simulator, Stack

EXPECTED = "".join(f"tok{i} " for i in range(16))
MODELS = {"ollama": "llama3.1:8b", "vllm": "qwen-coder", "anthropic": "claude-sonnet"}  # by backend
MODEL_NAMES = list(MODELS.values())
CALL = ("get_weather", {"city": "tok0"})  # the call a simulator makes when offered WEATHER


@dataclass
class ThreeBackends:
    sims: dict[str, Simulator]  # by backend: "ollama", "vllm", "anthropic"
    providers: dict[str, Any]  # providers.yaml's, one per backend
    exact_matches: dict[str, Any]  # model-mappings.yaml's: each model to its backend's provider


def three_backends(s: Stack, anthropic_key: str, key_env: str) -> ThreeBackends:
    s.env[key_env] = anthropic_key
    sims = {"ollama": s.simulator("ollama", ["llama3.1:8b"]),
            "vllm": s.simulator("openai", ["Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"]),
            "anthropic": s.simulator("anthropic", ["claude-sonnet-4-20250514"], "--api-key", anthropic_key)}
    for sim in sims.values():
        sim.knobs(tool_call=True)  # only requests that offer tools get a call
    providers = {
        "ollama": {"type": "ollama", "base_url": sims["ollama"].url},
        "vllm": {"type": "vllm", "base_url": sims["vllm"].url,
                 "models": {"qwen-coder": {"backend_model": "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"}}},
        "anthropic": {"type": "anthropic", "base_url": sims["anthropic"].url + "/v1", "requires_api_key": True,
                      "env_var": key_env, "models": {"claude-sonnet": {"backend_model": "claude-sonnet-4-20250514"}}},
    }
    return ThreeBackends(sims, providers, {model: {"provider": backend} for backend, model in MODELS.items()})
