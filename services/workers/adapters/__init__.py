"""Backend adapters by provider type.

    type               adapter                          API
    ollama             OllamaAdapter                    Ollama native /api (chat, generate, embed)
    ollama_cloud       OllamaAdapter                    the same at https://ollama.com, bearer key
    openai_compatible  OpenAICompatibleAdapter          OpenAI /v1, passthrough
    vllm               OpenAICompatibleAdapter          OpenAI /v1, passthrough
    llama_cpp          OpenAICompatibleAdapter(count)   OpenAI /v1; usage counted when the server sends none
    openai             OpenAICompatibleAdapter          OpenAI /v1 with a bearer key
    anthropic          AnthropicAdapter                 Messages API, chat only
"""

from __future__ import annotations

from services.workers.adapters.anthropic import AnthropicAdapter
from services.workers.adapters.base import Adapter
from services.workers.adapters.ollama import OllamaAdapter
from services.workers.adapters.openai_compatible import OpenAICompatibleAdapter
from shared.config import ProviderSpec

# Adapters hold no per-request state, so one of each serves every request.
_ADAPTERS: dict[str, Adapter] = {
    "ollama": OllamaAdapter(),
    "ollama_cloud": OllamaAdapter(),
    "openai_compatible": OpenAICompatibleAdapter(),
    "vllm": OpenAICompatibleAdapter(),
    "llama_cpp": OpenAICompatibleAdapter(count_usage=True),
    "openai": OpenAICompatibleAdapter(),
    "anthropic": AnthropicAdapter(),
}


def adapter_for(provider: ProviderSpec) -> Adapter:
    return _ADAPTERS[provider.type]
