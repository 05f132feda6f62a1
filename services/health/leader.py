"""Leader election among health replicas: a lease key in the `aiub_health` bucket.

Only the leader probes, judges and writes provider state; the others stand by.

- Claim: `kv.create("_leader")` succeeds for exactly one replica (creating it again after a
  delete works too: nats-py recreates over the delete marker by revision).
- Renew: every `renew_s` the leader rewrites the lease with `kv.update(last=revision)`. A
  wrong-revision error means another replica took the lease: the leader steps down at once.
- Expiry is judged by each standby on its own monotonic clock, never by comparing clocks of
  two machines: a lease whose revision has not changed for `lease_s` since the standby first
  saw it has lapsed, and the standby takes it with `kv.update(last=that revision)`; of several
  standbys, the compare-and-set lets one win.
- A leader that cannot renew for `lease_s / 2` steps down on its own, well before any standby
  can judge the lease lapsed, so two leaders never act at once (up to that margin).
- A leader that stops cleanly deletes the lease (by revision), and a standby claims it at its
  next poll instead of waiting out the lease.

`LeaseClock` holds those rules without I/O; `Elector` runs them against the bucket.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import msgspec
from nats.errors import Error as NatsError
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from shared import logs, subjects

log = logs.get("health")

Decision = Literal["claim", "take_over", "wait"]


class Lease(msgspec.Struct, frozen=True, kw_only=True):
    holder: str
    at: float  # the holder's wall clock, for people reading the bucket; expiry never uses it
    lease_s: float


lease_decoder = msgspec.json.Decoder(Lease)


@dataclass
class LeaseClock:
    """Pure: when a standby may take the lease, and when a leader must let it go."""

    lease_s: float
    revision: int | None = None
    seen_at: float = 0.0
    renewed_at: float = 0.0

    def observe(self, revision: int | None, now: float) -> Decision:
        """A standby's view of the lease key (None: absent or deleted)."""
        if revision is None:
            return "claim"
        if revision != self.revision:
            self.revision, self.seen_at = revision, now
            return "wait"
        return "take_over" if now - self.seen_at >= self.lease_s else "wait"

    def renewed(self, revision: int, now: float) -> None:
        self.revision, self.renewed_at = revision, now

    def must_resign(self, now: float) -> bool:
        return now - self.renewed_at >= self.lease_s / 2


class Elector:
    def __init__(self, kv: KeyValue, holder: str, lease_s: float = 3.0, renew_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._kv = kv
        self.holder = holder
        self.lease_s = lease_s
        self.renew_s = renew_s if renew_s is not None else lease_s / 4
        self._clock = clock
        self._lease = LeaseClock(lease_s)
        self.is_leader = False

    def _payload(self) -> bytes:
        return msgspec.json.encode(Lease(holder=self.holder, at=time.time(), lease_s=self.lease_s))

    async def run(self, elected: Callable[[], Awaitable[None]], deposed: Callable[[], Awaitable[None]]) -> None:
        """Forever: stand by or lead, calling `elected`/`deposed` on each change."""
        while True:
            was_leader = self.is_leader
            try:
                await (self._renew() if self.is_leader else self._contend())
            except (NatsError, TimeoutError) as e:
                log.warning("health_lease_error", holder=self.holder, error=repr(e))
                if self.is_leader and self._lease.must_resign(self._clock()):
                    self.is_leader = False
            if self.is_leader and not was_leader:
                log.info("health_leader_elected", holder=self.holder)
                await elected()
            elif was_leader and not self.is_leader:
                log.warning("health_leader_deposed", holder=self.holder)
                await deposed()
            await asyncio.sleep(self.renew_s)

    async def _renew(self) -> None:
        try:
            revision = await self._kv.update(subjects.HEALTH_LEADER_KEY, self._payload(), last=self._lease.revision)
        except KeyWrongLastSequenceError:
            self.is_leader = False
            return
        self._lease.renewed(revision, self._clock())

    async def _contend(self) -> None:
        try:
            entry = await self._kv.get(subjects.HEALTH_LEADER_KEY)
            current: int | None = entry.revision
        except (KeyNotFoundError, KeyDeletedError):
            current = None
        decision = self._lease.observe(current, self._clock())
        if decision == "wait":
            return
        try:
            if decision == "claim":
                revision = await self._kv.create(subjects.HEALTH_LEADER_KEY, self._payload())
            else:
                revision = await self._kv.update(subjects.HEALTH_LEADER_KEY, self._payload(), last=current)
        except KeyWrongLastSequenceError:
            return  # another replica won
        self._lease.renewed(revision, self._clock())
        self.is_leader = True

    async def resign(self) -> None:
        """Give the lease up now, so a standby need not wait for it to lapse."""
        if not self.is_leader:
            return
        self.is_leader = False
        with contextlib.suppress(NatsError, TimeoutError):
            await self._kv.delete(subjects.HEALTH_LEADER_KEY, last=self._lease.revision)
