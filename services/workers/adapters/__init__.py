"""Backend adapters by provider type."""

from __future__ import annotations

from services.workers.adapters.base import Adapter
from services.workers.adapters.openai_compatible import OpenAICompatibleAdapter
from shared.config import ProviderSpec

_OPENAI_COMPATIBLE = OpenAICompatibleAdapter()


def adapter_for(provider: ProviderSpec) -> Adapter:
    # Ollama also serves OpenAI's API under /v1; its native /api adapter can replace this.
    return _OPENAI_COMPATIBLE
