"""What the GraphQL interface follows on the bus while the gateway runs: provider states and their
transitions (the `aiub_health` KV bucket, through shared/health_view.py), and the request records
every gateway publishes on `aiub.events.request`, the last `RECENT_REQUESTS` of them kept.

Rules:
- the ring is bounded: the oldest record goes when a new one comes;
- a subscriber's queue is bounded (`SUBSCRIBER_QUEUE`): a subscriber that does not keep up loses
  its oldest undelivered items, never slows the bus callback or the other subscribers;
- a transition is a provider whose `state` differs from the one last seen (a probe that only
  refreshes `probed_at` is not one); the initial values are the baseline, not transitions;
- following is best effort: a bus that cannot be followed costs the GraphQL feeds, never the
  gateway's requests (this module is not on the chat path).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Generic, TypeVar

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from shared import logs, subjects
from shared.health_view import HealthView
from shared.messages import ProviderState, RequestRecord, record_decoder

log = logs.get("gateway.graphql")

RECENT_REQUESTS = 1000  # request records kept for `recentRequests`
SUBSCRIBER_QUEUE = 256  # items one subscription may have undelivered

T = TypeVar("T")


@dataclass(frozen=True)
class Transition:
    provider: str
    state: str
    previous: str | None  # None: the first state seen for this provider since the gateway started
    reason: str
    at: float  # the state's `since`
    current: ProviderState


class Feed(Generic[T]):
    """One producer, any number of subscribers, each with its own bounded queue."""

    def __init__(self, queue_size: int = SUBSCRIBER_QUEUE) -> None:
        self.queue_size = queue_size
        self._queues: set[asyncio.Queue[T]] = set()

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def publish(self, item: T) -> None:
        for queue in self._queues:
            if queue.full():
                queue.get_nowait()  # the subscriber is behind: its oldest item goes
            queue.put_nowait(item)

    async def follow(self) -> AsyncIterator[T]:
        queue: asyncio.Queue[T] = asyncio.Queue(self.queue_size)
        self._queues.add(queue)
        try:
            while True:
                yield await queue.get()
        finally:
            self._queues.discard(queue)


class RecentRequests:
    def __init__(self, size: int = RECENT_REQUESTS) -> None:
        self.size = size
        self._ring: deque[RequestRecord] = deque(maxlen=size)
        self.feed: Feed[RequestRecord] = Feed()

    def add(self, record: RequestRecord) -> None:
        self._ring.append(record)
        self.feed.publish(record)

    def newest(self, limit: int) -> list[RequestRecord]:
        """The newest `limit` records, newest first."""
        return [self._ring[-i] for i in range(1, min(limit, len(self._ring)) + 1)]


class TransitionView(HealthView):
    """The health view the router and dashboard use, publishing each transition as it applies."""

    def __init__(self) -> None:
        super().__init__()
        self.transitions: Feed[Transition] = Feed()
        self._seen: dict[str, str] = {}

    def _apply(self, key: str, value: bytes | None, operation: str | None) -> None:
        super()._apply(key, value, operation)
        current = self.states.get(key)
        if current is None or self._seen.get(key) == current.state:
            return
        before = self._seen.get(key)
        self._seen[key] = current.state
        if self._snapshot.is_set():
            self.transitions.publish(Transition(provider=key, state=current.state, previous=before,
                                                reason=current.reason, at=current.since, current=current))


class Live:
    """Started by the gateway's lifespan once it is connected (graphql_api/endpoint.py)."""

    def __init__(self) -> None:
        self.health = TransitionView()
        self.requests = RecentRequests()
        self.health_started = False
        self._subscription: Subscription | None = None
        self._health_task: asyncio.Task[None] | None = None

    async def start(self, nc: Client) -> None:
        async def on_record(msg: Msg) -> None:
            try:
                self.requests.add(record_decoder.decode(msg.data))
            except (msgspec.DecodeError, msgspec.ValidationError):
                pass

        try:
            self._subscription = await nc.subscribe(subjects.REQUEST_EVENTS, cb=on_record)
        except Exception as e:
            log.warning("graphql_requests_unfollowed", error=repr(e))
        # In the background: the gateway's readiness does not wait for the health bucket.
        self._health_task = asyncio.create_task(self._start_health(nc))

    async def _start_health(self, nc: Client) -> None:
        try:
            await self.health.start(nc.jetstream(), snapshot_timeout_s=5.0)
            self.health_started = True
        except Exception as e:
            log.warning("graphql_health_unfollowed", error=repr(e))

    async def stop(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._health_task
        with contextlib.suppress(Exception):
            await self.health.stop()
        if self._subscription is not None:
            with contextlib.suppress(Exception):
                await self._subscription.unsubscribe()
