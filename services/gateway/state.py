"""What the gateway holds for its lifetime: its policies and telemetry, built with the app, and
the bus connection and client library, which the lifespan adds once NATS answers."""

from __future__ import annotations

from dataclasses import dataclass, field

from nats.aio.client import Client
from opentelemetry.trace import TracerProvider

from services.gateway.policies import Policies
from services.gateway.served_models import ServedModels
from services.gateway.telemetry import RequestTelemetry
from shared import bus
from shared.client import InferenceClient
from shared.config import Config


@dataclass(kw_only=True)
class GatewayState:
    config: Config
    policies: Policies
    telemetry: RequestTelemetry
    nats_url: str | None = None
    bus_secret: bytes | None = None  # signs each caller's scope for the workers, when the bus requires one
    tracer_provider: TracerProvider | None = None  # None: tracing off (shared/spans.py)
    # Set by the lifespan:
    nc: Client | None = None
    client: InferenceClient | None = None
    bus_health: bus.BusHealth = field(default_factory=bus.BusHealth)
    served_models: ServedModels | None = None
    active_connections: int = 0  # streams being relayed
