"""A provider's latency against its own rolling baseline: the rule behind `degraded`. Pure.

Samples are the time to first token of successful inferences (the whole reply for
non-streaming calls, whose first token arrives with the last). Two exponentially weighted
moving averages follow them: `baseline_s` over about `baseline_window` samples, `recent_s`
over about `recent_window` (the weight of a new sample is 2 / (window + 1)).

- slow: at least `latency_min_samples` samples, `recent_s > degraded_factor x baseline_s`
  and `recent_s - baseline_s > degraded_min_s` (the floor keeps a 20 ms → 70 ms wobble of a
  fast backend from counting as trouble);
- recovered: `recent_s < recover_factor x baseline_s`, or `recent_s - baseline_s` below half
  the floor, or not enough samples yet.

The gap between the two factors is hysteresis: a provider hovering near the threshold does
not flap. The baseline keeps learning while the provider is slow, so a lasting change (a
bigger model, a busier GPU) becomes the new normal after about `baseline_window` samples,
and the provider returns to `active`: degraded means "much slower than it has lately been".
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.config import HealthCheckSpec


def _weight(window: int) -> float:
    return 2.0 / (window + 1)


@dataclass(frozen=True, slots=True)
class Latency:
    samples: int = 0
    baseline_s: float = 0.0
    recent_s: float = 0.0

    def add(self, sample_s: float, settings: HealthCheckSpec) -> Latency:
        sample_s = max(0.0, sample_s)
        if self.samples == 0:
            return Latency(1, sample_s, sample_s)
        b, r = _weight(settings.baseline_window), _weight(settings.recent_window)
        return Latency(self.samples + 1, self.baseline_s + b * (sample_s - self.baseline_s),
                       self.recent_s + r * (sample_s - self.recent_s))

    def slow(self, settings: HealthCheckSpec) -> bool:
        return (self.samples >= settings.latency_min_samples
                and self.recent_s > settings.degraded_factor * self.baseline_s
                and self.recent_s - self.baseline_s > settings.degraded_min_s)

    def recovered(self, settings: HealthCheckSpec) -> bool:
        return (self.samples < settings.latency_min_samples
                or self.recent_s < settings.recover_factor * self.baseline_s
                or self.recent_s - self.baseline_s < settings.degraded_min_s / 2)

    def describe(self) -> str:
        return f"latency {self.recent_s:.3g}s against a baseline of {self.baseline_s:.3g}s"
