"""The spec's metrics, summed across every `/metrics` endpoint the dashboard scrapes. No I/O.

Counters and most gauges are summed over endpoints (two workers serving one provider each
count their share); `provider_availability` takes the maximum, since every health replica
reports the same provider.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families


@dataclass
class MetricsSummary:
    endpoints: dict[str, bool] = field(default_factory=dict)  # url → answered
    requests: dict[str, float] = field(default_factory=dict)  # provider_requests_total by provider
    errors: dict[str, float] = field(default_factory=dict)  # provider_errors_total by provider
    distribution: dict[str, float] = field(default_factory=dict)  # router_load_balance_distribution
    fallbacks: dict[str, float] = field(default_factory=dict)  # router_fallback_triggered by original provider
    decisions: dict[str, float] = field(default_factory=dict)  # router_routing_decisions by strategy
    availability: dict[str, float] = field(default_factory=dict)
    active_connections: float | None = None
    queued: float | None = None
    throughput: float | None = None
    cache_hits: float | None = None
    cache_misses: float | None = None

    @property
    def cache_hit_rate(self) -> float | None:
        if self.cache_hits is None or self.cache_misses is None or self.cache_hits + self.cache_misses == 0:
            return None
        return self.cache_hits / (self.cache_hits + self.cache_misses)


def _add(target: dict[str, float], key: str | None, value: float) -> None:
    if key is not None:
        target[key] = target.get(key, 0.0) + value


def _plus(current: float | None, value: float) -> float:
    return value if current is None else current + value


_BY_LABEL = {
    "provider_requests_total": ("requests", "provider"),
    "provider_errors_total": ("errors", "provider"),
    "router_load_balance_distribution_total": ("distribution", "provider"),
    "router_fallback_triggered_total": ("fallbacks", "original_provider"),
    "router_routing_decisions_total": ("decisions", "strategy"),
}
_SCALARS = {
    "active_connections": "active_connections",
    "request_queue_size": "queued",
    "total_throughput_tokens_per_second": "throughput",
    "cache_hits_total": "cache_hits",
    "cache_misses_total": "cache_misses",
}


def summarize(texts: Mapping[str, str | None]) -> MetricsSummary:
    """`texts`: each endpoint's exposition text, or None when it did not answer."""
    out = MetricsSummary()
    for url, text in texts.items():
        out.endpoints[url] = text is not None
        if text is None:
            continue
        try:
            families = list(text_string_to_metric_families(text))
        except ValueError:
            out.endpoints[url] = False
            continue
        for family in families:
            for sample in family.samples:
                name, labels, value = sample.name, sample.labels, float(sample.value)
                if name in _BY_LABEL:
                    attribute, label = _BY_LABEL[name]
                    _add(getattr(out, attribute), labels.get(label), value)
                elif name in _SCALARS:
                    attribute = _SCALARS[name]
                    setattr(out, attribute, _plus(getattr(out, attribute), value))
                elif name == "provider_availability" and "provider" in labels:
                    provider = labels["provider"]
                    out.availability[provider] = max(value, out.availability.get(provider, 0.0))
    return out
