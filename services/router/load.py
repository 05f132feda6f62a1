"""How busy each provider is, as one router sees it. Pure: the caller passes the time.

Rules:
- Workers publish absolute counts (`LoadReport`) every <= 0.5 s, and every router hears all of
  them, so any router's view is at most one report old and one lost message costs nothing.
  A report is live for `ttl_s` after it was *received* (the router's clock: worker clocks may
  differ); a worker with no live report does not count.
- Between two reports a router corrects the last count with what it knows for sure: attempts
  it placed on that worker since (they are not in the report yet) and `Outcome`s of attempts
  that ended since (they are). Each report resets the corrections, so they never drift.
  Other routers' placements since the last report are invisible for at most one interval.
  A `Busy` answer counts the worker full until its next report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.messages import LoadReport

DEFAULT_TTL_S = 2.0


@dataclass
class _Worker:
    provider: str
    reported: int = 0  # in flight + queued, as of the last report
    capacity: int = 0
    queue_capacity: int = 0
    received: float = 0.0
    placed: set[str] = field(default_factory=set)  # our attempts accepted since the report
    ended: int = 0  # attempts that ended since the report and were not in `placed`


@dataclass(frozen=True)
class ProviderLoad:
    busy: int  # in flight + queued, best estimate
    capacity: int  # slots across the live workers
    queue_capacity: int
    workers: int


class LoadView:
    def __init__(self, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.ttl_s = ttl_s
        self._workers: dict[tuple[str, str], _Worker] = {}

    def report(self, report: LoadReport, now: float) -> None:
        worker = self._workers.setdefault((report.provider, report.worker_id), _Worker(report.provider))
        worker.reported = max(0, report.in_flight) + max(0, report.queued)
        worker.capacity = max(0, report.capacity)
        worker.queue_capacity = max(0, report.queue_capacity)
        worker.received = now
        worker.placed.clear()
        worker.ended = 0

    def placed(self, provider: str, worker_id: str, attempt: str, now: float) -> None:
        """A worker accepted an attempt from this router."""
        worker = self._workers.get((provider, worker_id))
        if worker is None:  # accepted before its first report reached us: live until the report is due
            worker = self._workers[(provider, worker_id)] = _Worker(provider, received=now)
        worker.placed.add(attempt)

    def ended(self, provider: str, worker_id: str, attempt: str) -> None:
        """An attempt's `Outcome` arrived: it no longer occupies a slot."""
        worker = self._workers.get((provider, worker_id))
        if worker is None:
            return
        if attempt in worker.placed:
            worker.placed.discard(attempt)
        else:
            worker.ended += 1

    def refused(self, provider: str, worker_id: str) -> None:
        """The worker answered `Busy`: count it full until its next report says otherwise."""
        worker = self._workers.get((provider, worker_id))
        if worker is not None:
            worker.reported = max(worker.reported, worker.capacity + worker.queue_capacity + worker.ended)

    def load(self, provider: str, now: float) -> ProviderLoad | None:
        """The provider's load across its live workers; None when no worker has reported lately."""
        busy = capacity = queue_capacity = workers = 0
        for (name, _), worker in self._workers.items():
            if name != provider or now - worker.received > self.ttl_s:
                continue
            busy += max(0, worker.reported - worker.ended) + len(worker.placed)
            capacity += worker.capacity
            queue_capacity += worker.queue_capacity
            workers += 1
        return ProviderLoad(busy, capacity, queue_capacity, workers) if workers else None

    def prune(self, now: float) -> None:
        """Forget workers whose last report expired (stopped or scaled down), so memory stays bounded."""
        for key in [k for k, w in self._workers.items() if now - w.received > self.ttl_s]:
            del self._workers[key]
