"""Prometheus metrics, with the spec's names, one class per service.

Each service builds its metrics on its own `CollectorRegistry` (no import-time globals, so
tests can build several services in one process) and serves them on `/metrics`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class ProviderMetrics:
    """Worker side: what each provider did."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("provider_requests", "Attempts served, by provider and outcome",
                                ["provider", "outcome"], registry=registry)
        self.latency = Histogram("provider_latency_seconds", "Backend latency: ttft and total",
                                 ["provider", "phase"], buckets=LATENCY_BUCKETS, registry=registry)
        self.errors = Counter("provider_errors", "Failed attempts by kind", ["provider", "kind"], registry=registry)
        self.queue_size = Gauge("request_queue_size", "Requests waiting for a slot", ["provider"], registry=registry)
        self.in_flight = Gauge("provider_in_flight", "Requests running on the backend", ["provider"],
                               registry=registry)
        self.tokens = Counter("provider_tokens", "Tokens generated", ["provider", "direction"], registry=registry)


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.decisions = Counter("router_routing_decisions", "Routing decisions by strategy", ["strategy"],
                                 registry=registry)
        self.fallbacks = Counter("router_fallback_triggered", "Attempts placed after a failed one",
                                 ["original_provider"], registry=registry)
        self.distribution = Counter("router_load_balance_distribution", "Attempts placed per provider",
                                    ["provider"], registry=registry)
        self.refusals = Counter("router_refusals", "Requests no provider could take", ["reason"],
                                registry=registry)


class HealthMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.availability = Gauge("provider_availability", "1 when routable, else 0", ["provider"],
                                  registry=registry)
        self.state = Gauge("provider_state", "1 for the provider's current state", ["provider", "state"],
                           registry=registry)
        self.transitions = Counter("provider_transitions", "State transitions by reason",
                                   ["provider", "to", "reason"], registry=registry)
        self.probe_latency = Histogram("provider_probe_latency_seconds", "Active probe latency", ["provider"],
                                       buckets=LATENCY_BUCKETS, registry=registry)


class GatewayMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter("gateway_requests", "Client requests by status class", ["endpoint", "status"],
                                registry=registry)
        self.latency = Histogram("gateway_request_latency_seconds", "Client-visible latency", ["endpoint"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.active_connections = Gauge("active_connections", "Requests being answered", registry=registry)
        self.cache_hits = Counter("cache_hits", "Response cache hits", registry=registry)
        self.cache_misses = Counter("cache_misses", "Response cache misses", registry=registry)
        self.cache_errors = Counter("cache_errors", "Cache bypassed because the store failed", registry=registry)
        self.cache_hit_rate = Gauge("cache_hit_rate", "Hits / (hits + misses) since start", registry=registry)
        self.throughput = Gauge("total_throughput_tokens_per_second", "Completion tokens per second, last 10 s",
                                registry=registry)
        # Hedging (shared/hedging.py): by the provider of the slow attempt that was hedged.
        self.hedges_started = Counter("gateway_hedges_started", "Second attempts started because the first "
                                      "sent no token in time", ["provider"], registry=registry)
        self.hedges_won = Counter("gateway_hedges_won", "Hedges that answered before the attempt they raced",
                                  ["provider"], registry=registry)


def serve(registry: CollectorRegistry, port: int | None, host: str | None = None) -> int | None:
    """Serve `/metrics` on its own port (None: not served; 0: any free port). Returns the port.

    `host` (from `AIUB_METRICS_HOST`, read by cli/main.py) defaults to loopback; in containers
    `AIUB_METRICS_HOST=0.0.0.0` lets Prometheus in.
    """
    if port is None:
        return None
    server, _ = start_http_server(port, addr=host or "127.0.0.1", registry=registry)
    return int(server.server_port)
