"""The health service: a thin shell around one `Breaker` per provider.

It feeds the breakers with active probes (`prober`), the workers' `Outcome` events
(`passive`), trial results (`trial`) and clock ticks, carries out their effects, and
publishes each provider's state in the `aiub_health` KV bucket, the one channel routers and
dashboards read. Only the elected leader (`leader`) does any of that; a standby replica only
contends for the lease, and on election resumes from the states in the bucket.

Writes are compare-and-set on the key's revision (`kv.create` for a new key, `kv.update`
with the last revision otherwise), from one writer task, so they leave in the order the
breakers changed and a newer state is never overwritten by an older one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, get_args

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import Error as NatsError
from nats.js.errors import KeyDeletedError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from services.health import breaker
from services.health.breaker import Breaker, Event, ProbeFailed, ProbePassed, Tick, TrialFailed, TrialPassed
from services.health.leader import Elector
from services.health.passive import event_for
from services.health.prober import probe, probe_url
from services.health.trial import TrialRunner, is_trial
from shared import logs, subjects
from shared.client import new_id
from shared.config import Config, ProviderSpec
from shared.health_view import Heartbeat, open_bucket
from shared.http_library import httpx
from shared.messages import ProviderState, StateName, encode, outcome_decoder
from shared.metrics import HealthMetrics

log = logs.get("health")

STATE_NAMES: tuple[StateName, ...] = get_args(StateName)


@dataclass(frozen=True)
class ServiceSettings:
    heartbeat_s: float = 2.0
    lease_s: float = 3.0
    tick_s: float = 0.1  # how late, at most, a trial starts after its open period or a 429 ends


class HealthService:
    def __init__(self, nc: Client, config: Config, metrics: HealthMetrics, settings: ServiceSettings | None = None,
                 clock: Callable[[], float] = time.time, holder: str | None = None) -> None:
        self._nc = nc
        self._config = config
        self._metrics = metrics
        self.settings = settings or ServiceSettings()
        self._clock = clock
        self.holder = holder or f"{socket.gethostname()}-{os.getpid()}-{new_id()[-6:]}"
        self.providers: dict[str, ProviderSpec] = {n: s for n, s in config.providers.items() if s.status == "active"}
        self.breakers: dict[str, Breaker] = {}
        self.probes: dict[str, tuple[float, float]] = {}  # provider -> (latency_s, at) of the last passing probe
        self.outcomes_seen = 0
        # The latest effects, newest last, as (wall clock, provider, effect): for tests and dashboards.
        self.history: deque[tuple[float, str, breaker.Effect]] = deque(maxlen=512)
        self._kv: KeyValue | None = None
        self._revisions: dict[str, int] = {}
        self._pending: dict[str, ProviderState] = {}
        self._wake = asyncio.Event()
        self._elector: Elector | None = None
        self._trials = TrialRunner(nc, config)
        self._http = httpx.AsyncClient(trust_env=False)
        self._sub: Subscription | None = None
        self._leading: set[asyncio.Task[Any]] = set()
        self._background: list[asyncio.Task[None]] = []

    @property
    def is_leader(self) -> bool:
        return self._elector is not None and self._elector.is_leader

    async def start(self) -> None:
        self._kv = await open_bucket(self._nc.jetstream())
        await self._trials.start()
        self._sub = await self._nc.subscribe(subjects.OUTCOME_ALL, cb=self._on_outcome)
        self._elector = Elector(self._kv, self.holder, self.settings.lease_s)
        self._background.append(asyncio.create_task(self._elector.run(self._elected, self._deposed)))

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        await self._deposed()
        if self._elector is not None:
            await self._elector.resign()
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        await self._trials.stop()
        await self._http.aclose()

    def reconfigure(self, config: Config) -> None:
        """A new config revision (shared/config_watch.py). When the active providers or their
        settings (health checks, URLs) changed, a leader leads again on them: each breaker resumes
        from the state the bucket holds (as a newly elected leader does), probes restart with the
        new intervals, and removed providers are no longer checked."""
        self._config = config
        self._trials.reconfigure(config)
        providers = {n: s for n, s in config.providers.items() if s.status == "active"}
        if providers == self.providers:
            return
        self.providers = providers
        if self.is_leader:
            task = asyncio.create_task(self._relead())
            self._background.append(task)

    async def _relead(self) -> None:
        await self._deposed()
        for name in [n for n in self.breakers if n not in self.providers]:
            del self.breakers[name]
        if self.is_leader:
            self._spawn(self._lead())
        log.info("health_reconfigured", providers=list(self.providers))

    # -- leadership -----------------------------------------------------------------------
    async def _elected(self) -> None:
        self._spawn(self._lead())

    async def _lead(self) -> None:
        while True:
            try:
                await self._adopt()
                break
            except (NatsError, TimeoutError) as e:
                log.warning("health_adopt_failed", error=repr(e))
                await asyncio.sleep(0.5)
        self._spawn(self._write_loop())
        self._spawn(self._heartbeat_loop())
        self._spawn(self._tick_loop())
        for name, spec in self.providers.items():
            if probe_url(spec) is not None:
                self._spawn(self._probe_loop(name, spec))

    async def _deposed(self) -> None:
        self._pending.clear()
        tasks, self._leading = list(self._leading), set()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._leading.add(task)
        task.add_done_callback(self._leading.discard)

    async def _adopt(self) -> None:
        """Resume from the bucket: what an earlier leader published is the truth."""
        assert self._kv is not None
        now = self._clock()
        self._revisions.clear()
        for name, spec in self.providers.items():
            try:
                entry = await self._kv.get(name)
                state = msgspec.json.decode(entry.value or b"", type=ProviderState)
                self.breakers[name] = breaker.from_state(state, spec.health)
                self._revisions[name] = entry.revision or 0
            except (KeyNotFoundError, KeyDeletedError, msgspec.ValidationError, msgspec.DecodeError):
                self.breakers[name] = Breaker(since=now, reason="health service started")
                self._pending[name] = self._state(name)
            self._update_gauges(name)
        log.info("health_leading", holder=self.holder, states={n: b.state for n, b in self.breakers.items()})
        self._wake.set()

    # -- inputs ---------------------------------------------------------------------------
    async def _on_outcome(self, msg: Msg) -> None:
        if not self.is_leader:
            return
        try:
            outcome = outcome_decoder.decode(msg.data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return
        if outcome.provider not in self.breakers or is_trial(outcome.request_id):
            return  # a trial's own result arrives from the trial itself
        self.outcomes_seen += 1
        event = event_for(outcome, self._clock())
        if event is not None:
            self.apply(outcome.provider, event)

    async def _probe_loop(self, name: str, spec: ProviderSpec) -> None:
        while True:
            result = await probe(self._http, spec)
            if result is None:
                return
            now = self._clock()
            if result.ok:
                self.probes[name] = (result.latency_s, now)
                self._metrics.probe_latency.labels(name).observe(result.latency_s)
                self.apply(name, ProbePassed(now, result.latency_s), publish=True)
            else:
                self.apply(name, ProbeFailed(now, result.reason))
            await asyncio.sleep(spec.health.interval_s)

    async def _tick_loop(self) -> None:
        while True:
            now = self._clock()
            for name in list(self.breakers):
                self.apply(name, Tick(now))
            await asyncio.sleep(self.settings.tick_s)

    async def _trial(self, name: str, number: int, timeout_s: float) -> None:
        reason = await self._trials.run(name, timeout_s)
        now = self._clock()
        self.apply(name, TrialPassed(now, number) if reason is None else TrialFailed(now, number, reason))

    # -- the breaker and its effects ------------------------------------------------------
    def apply(self, name: str, event: Event, publish: bool = False) -> None:
        before = self.breakers[name]
        after, effects = breaker.step(before, event, self.providers[name].health)
        self.breakers[name] = after
        for effect in effects:
            self.history.append((self._clock(), name, effect))
            match effect:
                case breaker.Transitioned():
                    self._transitioned(name, effect, after)
                case breaker.RampStepped(admit_fraction=fraction):
                    log.info("provider_admission_raised", provider=name, admit_fraction=fraction)
                case breaker.StartTrial(trial=number, deadline=deadline):
                    log.info("provider_trial_started", provider=name, trial=number)
                    self._spawn(self._trial(name, number, max(0.0, deadline - self._clock())))
        if publish or breaker.to_state(name, before) != breaker.to_state(name, after):
            self._pending[name] = self._state(name)
            self._wake.set()

    def _transitioned(self, name: str, moved: breaker.Transitioned, after: Breaker) -> None:
        emit = log.warning if moved.down else log.info
        emit("provider_state_changed", provider=name, state=moved.target, previous=moved.source,
             trigger=moved.trigger, reason=moved.reason, seq=after.seq, open_until=after.open_until,
             admit_fraction=after.admit_fraction)
        self._metrics.transitions.labels(name, moved.target, moved.trigger).inc()
        self._update_gauges(name)

    def _update_gauges(self, name: str) -> None:
        current = self.breakers[name]
        self._metrics.availability.labels(name).set(1 if self._state(name).routable else 0)
        for state in STATE_NAMES:
            self._metrics.state.labels(name, state).set(1 if state == current.state else 0)

    def _state(self, name: str) -> ProviderState:
        latency, at = self.probes.get(name, (None, None))
        return breaker.to_state(name, self.breakers[name], latency, at)

    # -- outputs --------------------------------------------------------------------------
    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                name, state = self._pending.popitem()
                try:
                    await self._write(name, state)
                except (NatsError, TimeoutError) as e:
                    log.warning("health_write_failed", provider=name, error=repr(e))
                    self._pending.setdefault(name, state)
                    await asyncio.sleep(0.2)

    async def _write(self, name: str, state: ProviderState) -> None:
        assert self._kv is not None
        data = encode(state)
        revision = self._revisions.get(name)
        try:
            if revision is None:
                self._revisions[name] = await self._kv.create(name, data)
            else:
                self._revisions[name] = await self._kv.update(name, data, last=revision)
        except KeyWrongLastSequenceError:
            # Someone else wrote the key: a leader that lost its lease without noticing yet.
            # The lease decides who is right; if it is still ours, ours is the newer state.
            log.warning("health_write_conflict", provider=name, holder=self.holder)
            try:
                self._revisions[name] = (await self._kv.get(name)).revision or 0
            except (KeyNotFoundError, KeyDeletedError):
                self._revisions.pop(name, None)
            if self.is_leader:
                self._pending.setdefault(name, state)

    async def _heartbeat_loop(self) -> None:
        assert self._kv is not None
        while True:
            with contextlib.suppress(NatsError, TimeoutError):
                await self._kv.put(subjects.HEALTH_HEARTBEAT_KEY, encode(
                    Heartbeat(leader=self.holder, at=self._clock(), interval_s=self.settings.heartbeat_s)))
            await asyncio.sleep(self.settings.heartbeat_s)
