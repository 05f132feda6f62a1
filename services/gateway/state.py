"""What the gateway holds for its lifetime: its policies and telemetry, built with the app, and
the bus connection and client library, which the lifespan adds once NATS answers.

`reconfigure` is the gateway's side of live config (shared/config_watch.py): one swap per new
revision. A request reads `config` (and the policies' `runtime`) when it starts; the swap replaces
those references between requests, so requests already running finish on the revision they
started with. Swapped: the config itself (/v1/models, the front doors' model lists), per-model
limits and cache TTLs, prices, the client library's deadlines. Not swapped (built at start: the
listener, CORS, Redis, auth, the cache store): `revisions.restart_needed` names them in the log.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nats.aio.client import Client
from opentelemetry.trace import TracerProvider

from services.gateway.policies import Policies
from services.gateway.prices import Prices
from services.gateway.served_models import ServedModels
from services.gateway.telemetry import RequestTelemetry
from shared import bus
from shared.client import InferenceClient
from shared.config import Config
from shared.config_watch import ConfigWatch


@dataclass(kw_only=True)
class GatewayState:
    config: Config
    policies: Policies
    telemetry: RequestTelemetry
    nats_url: str | None = None
    bus_secret: bytes | None = None  # signs each caller's scope for the workers, when the bus requires one
    tracer_provider: TracerProvider | None = None  # None: tracing off (shared/spans.py)
    live: ConfigWatch | None = None  # the config revision being run; a new one replaces `config` (live_config.py)
    # Set by the lifespan:
    nc: Client | None = None
    client: InferenceClient | None = None
    bus_health: bus.BusHealth = field(default_factory=bus.BusHealth)
    served_models: ServedModels | None = None
    active_connections: int = 0  # streams being relayed

    def reconfigure(self, config: Config) -> None:
        policies = self.policies
        # Auth and Redis keep the settings the policies were built with (read only at start).
        policies.runtime = config.runtime.model_copy(update={"auth": policies.runtime.auth,
                                                             "redis": policies.runtime.redis})
        policies.prices = Prices.of(config)
        if self.client is not None:
            self.client.deadlines = config.runtime.deadlines
        if self.nc is not None:
            self.served_models = ServedModels(self.nc, config)
        self.config = config
