"""The health service's history of effects is dated by its injected clock, like everything else it does."""

from __future__ import annotations

from pathlib import Path

from nats.aio.client import Client
from prometheus_client import CollectorRegistry

from services.health import breaker
from services.health.service import HealthService
from shared.config import Config, ModelMappingsFile, ProviderSpec, RuntimeFile
from shared.metrics import HealthMetrics


async def test_the_history_is_stamped_by_the_injected_clock() -> None:
    config = Config(directory=Path("."), mappings=ModelMappingsFile(), runtime=RuntimeFile(),
                    providers={"p": ProviderSpec.model_validate({"type": "vllm", "base_url": "http://h"})})
    now = 1000.0
    service = HealthService(Client(), config, HealthMetrics(CollectorRegistry()), clock=lambda: now)
    try:
        service.breakers["p"] = breaker.Breaker(since=now)
        now = 1005.0
        service.apply("p", breaker.RateLimited(now, retry_after_s=5))
        assert service.history, "a 429 moves the breaker: there is an effect to date"
        assert {at for at, _, _ in service.history} == {1005.0}
    finally:
        await service.stop()
