"""A live, read-only copy of provider states from the `aiub_health` KV bucket.

Routers and the dashboard hold one. A watcher delivers the current value of every key at
start (so a process started after a transition knows the state at once), then each update.
The health service refreshes a heartbeat key; when it is older than `stale_after_s`, the last
known states are kept, and reported as stale.

`start` returns once the initial values have arrived (or after `snapshot_timeout_s`), so a
router that starts taking requests after `start` already obeys every state in the bucket.

After a NATS restart the watcher's consumer may be gone; nats-py notices only after two missed
idle heartbeats (10-20 s). `rewatch`, called on reconnect, opens a fresh watcher at once (it
delivers every current value again), so a transition made after the restart is not missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from shared import buckets, bus, lifecycle, logs, subjects
from shared.messages import ProviderState, state_decoder

log = logs.get("health_view")


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True):
    leader: str
    at: float  # the leader's wall clock when written
    interval_s: float = 2.0  # how often the leader writes it


heartbeat_decoder = msgspec.json.Decoder(Heartbeat)


async def open_bucket(js: JetStreamContext) -> KeyValue:
    return await buckets.open_bucket(js, subjects.HEALTH_BUCKET,
                                     description="aiub provider states (writer: health service)")


async def forget_states(js: JetStreamContext) -> None:
    """Drop every provider state: the next health leader starts from `active` and probes."""
    try:
        await js.delete_key_value(subjects.HEALTH_BUCKET)
    except NotFoundError:
        pass


class HealthView:
    def __init__(self, stale_after_s: float = 10.0) -> None:
        self.states: dict[str, ProviderState] = {}
        self.heartbeat: Heartbeat | None = None
        self.stale_after_s = stale_after_s
        self.updates = 0
        self.received_at: dict[str, float] = {}  # wall clock when each key's latest value arrived
        self._task: asyncio.Task[None] | None = None
        self._watcher: KeyValue.KeyWatcher | None = None
        self._js: JetStreamContext | None = None
        self._snapshot = asyncio.Event()
        self.changed = asyncio.Event()

    @property
    def stale(self) -> bool:
        return self.heartbeat is None or time.time() - self.heartbeat.at > self.stale_after_s

    async def start(self, js: JetStreamContext, snapshot_timeout_s: float = 5.0) -> None:
        self._js = js
        self._watcher = await (await open_bucket(js)).watchall()
        self._task = asyncio.create_task(self._follow(self._watcher))
        try:
            async with asyncio.timeout(snapshot_timeout_s):
                await self._snapshot.wait()
        except TimeoutError:
            log.warning("health_snapshot_late", waited_s=snapshot_timeout_s)

    async def rewatch(self) -> None:
        """Replace the watcher with a fresh one; if that fails, keep the old (it heals itself, later)."""
        if self._js is None or self._task is None:
            return
        try:
            watcher = await (await open_bucket(self._js)).watchall()
        except Exception as e:  # the bus went away again: the next reconnect tries anew
            log.warning("health_rewatch_failed", error=repr(e))
            return
        old_task, old_watcher = self._task, self._watcher
        self._watcher, self._task = watcher, asyncio.create_task(self._follow(watcher))
        await bus.retire_follower(old_task, old_watcher)
        log.info("health_rewatched")

    async def stop(self) -> None:
        await lifecycle.cancel_and_wait(self._task)

    async def wait_for(self, predicate: Callable[[HealthView], bool], timeout_s: float, poll_s: float = 0.05) -> None:
        """Until `predicate(self)` holds, checked on every update and every `poll_s` (staleness
        changes with time alone); TimeoutError after `timeout_s`."""
        async with asyncio.timeout(timeout_s):
            while not predicate(self):
                self.changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(poll_s):
                        await self.changed.wait()

    async def _follow(self, watcher: KeyValue.KeyWatcher) -> None:
        async for entry in watcher:
            if entry is None:  # end of the initial values
                self._snapshot.set()
                continue
            try:
                self._apply(entry.key, entry.value, entry.operation)
            except (msgspec.ValidationError, msgspec.DecodeError) as e:
                log.warning("health_entry_unreadable", key=entry.key, error=str(e))

    def _apply(self, key: str, value: bytes | None, operation: str | None) -> None:
        self.updates += 1
        self.received_at[key] = time.time()
        if key == subjects.HEALTH_HEARTBEAT_KEY:
            self.heartbeat = heartbeat_decoder.decode(value) if value else None
        elif key.startswith("_"):
            return
        elif operation in ("DEL", "PURGE") or not value:
            self.states.pop(key, None)
        else:
            state = state_decoder.decode(value)
            previous = self.states.get(key)
            if previous is None or state.seq >= previous.seq:
                self.states[key] = state
        self.changed.set()
