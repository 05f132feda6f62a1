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
- A report may carry the backend's own load (running, waiting, KV use), read by the worker
  from the backend's load endpoint. All workers of a provider read the same backend, so the
  provider's backend load is the freshest live report's, never a sum; our placements since
  the reports are added to its count, as for the workers' own counts.
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
    backend: tuple[int, float] | None = None  # the backend's running + waiting, and its KV use


@dataclass(frozen=True)
class ProviderLoad:
    busy: int  # in flight + queued, best estimate
    capacity: int  # slots across the live workers
    queue_capacity: int
    workers: int
    backend_busy: int | None = None  # the backend's own running + waiting, plus our placements since
    kv_usage: float | None = None  # the backend's KV cache use, 0..1


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
        if report.backend_running is None and report.backend_waiting is None:
            worker.backend = None
        else:
            worker.backend = ((report.backend_running or 0) + (report.backend_waiting or 0),
                              report.backend_kv_usage or 0.0)

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
        busy = capacity = queue_capacity = workers = placed = 0
        freshest: _Worker | None = None
        for (name, _), worker in self._workers.items():
            if name != provider or now - worker.received > self.ttl_s:
                continue
            busy += max(0, worker.reported - worker.ended) + len(worker.placed)
            placed += len(worker.placed)
            capacity += worker.capacity
            queue_capacity += worker.queue_capacity
            workers += 1
            if worker.backend is not None and (freshest is None or worker.received > freshest.received):
                freshest = worker
        if not workers:
            return None
        if freshest is None or freshest.backend is None:
            return ProviderLoad(busy, capacity, queue_capacity, workers)
        backend_busy, kv_usage = freshest.backend
        return ProviderLoad(busy, capacity, queue_capacity, workers, backend_busy + placed, kv_usage)

    def prune(self, now: float) -> None:
        """Forget workers whose last report expired (stopped or scaled down), so memory stays bounded."""
        for key in [k for k, w in self._workers.items() if now - w.received > self.ttl_s]:
            del self._workers[key]
