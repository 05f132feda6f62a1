"""The router: takes `InferenceRequest`s from `aiub.requests` and hands each to a worker.

Thin shell over `decision.decide`. Its inputs are rebuilt from what every router hears, so
two replicas decide alike: provider states from the health KV bucket, load from the workers'
`LoadReport`s on `aiub.load.*`, latency and success from `Outcome`s on
`aiub.events.outcome.*` (both fan-out subscriptions, not queue groups). Dispatch is a NATS
request to `aiub.work.<provider>`, answered at once by `Accepted` or `Busy`. No responders
(no worker running) or `Busy` → the next target immediately; nothing left → an `Error` frame
to the caller's inbox. Each request gets its own task: the NATS callback never awaits a
dispatch, so one slow worker cannot stall the subscription.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout
from prometheus_client import CollectorRegistry

from services.router import hedging
from services.router.decision import Plan, RoutedBy, Target, decide
from services.router.load import LoadView
from services.router.stats import UsageStats
from services.router.strategies import Balancer
from shared import logs, spans, subjects, tracing
from shared.config import Config
from shared.errors import AiubError, BadRequest, RouterFailed, ServiceUnavailable
from shared.health_view import HealthView
from shared.messages import (
    WORKER_UNRESPONSIVE,
    Accepted,
    Busy,
    InferenceRequest,
    WorkOrder,
    encode,
    frame_decoder,
    load_decoder,
    outcome_decoder,
    request_decoder,
)
from shared.metrics import RouterMetrics

log = logs.get("router")

# `router_routing_decisions{strategy}` uses the spec's names for the rule that matched.
DECISION_LABELS: dict[RoutedBy, str] = {
    "exact": "exact_match", "pattern": "pattern_match", "capability": "capability",
    "load_balancing": "load_balancing", "default": "default_provider",
}
_PRUNE_EVERY_S = 10.0
BUSY_SUFFIX = " (busy)"
BUSY_RETRY_AFTER_S = 1.0


class Router:
    def __init__(self, nc: Client, config: Config, health: HealthView, metrics: RouterMetrics | None = None,
                 rng: random.Random | None = None, clock: Callable[[], float] = time.monotonic,
                 tracer: spans.Tracer | None = None) -> None:
        self._nc = nc
        self._tracer = tracer or spans.tracer("aiub.router")
        self._config = config
        self._health = health
        self.metrics = metrics or RouterMetrics(CollectorRegistry())
        self._rng = rng or random.Random()
        self._clock = clock
        self.load = LoadView()
        self.usage = UsageStats()
        self.balancer = Balancer()
        self._tasks: set[asyncio.Task[None]] = set()
        self._subs: list[Subscription] = []
        self._pruned_at = clock()

    async def start(self) -> None:
        # Load and outcomes first, so the first request already sees the workers.
        self._subs.append(await self._nc.subscribe(subjects.LOAD_ALL, cb=self._on_load))
        self._subs.append(await self._nc.subscribe(subjects.OUTCOME_ALL, cb=self._on_outcome))
        self._subs.append(await self._nc.subscribe(subjects.REQUESTS, queue=subjects.ROUTER_QUEUE,
                                                   cb=self._on_request))

    async def _on_request(self, msg: Msg) -> None:
        task = asyncio.create_task(self._route(msg.data, msg.reply, msg.headers))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _on_load(self, msg: Msg) -> None:
        try:
            report = load_decoder.decode(msg.data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return
        now = self._clock()
        self.load.report(report, now)
        if now - self._pruned_at > _PRUNE_EVERY_S:
            self.load.prune(now)
            self._pruned_at = now

    async def _on_outcome(self, msg: Msg) -> None:
        try:
            outcome = outcome_decoder.decode(msg.data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return
        self.usage.record(outcome, self._clock())
        self.load.ended(outcome.provider, outcome.worker_id, outcome.attempt)

    def reconfigure(self, config: Config) -> None:
        """A new config revision (shared/config_watch.py): requests placed from now on use it;
        those already being placed finish on the one they read."""
        self._config = config

    async def wait_idle(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    def plan(self, request: InferenceRequest, config: Config | None = None) -> Plan:
        return decide(config or self._config, request, states=self._health.states, load=self.load, usage=self.usage,
                      balancer=self.balancer, admit_draw=self._rng.random(), now=self._clock(),
                      wall_now=time.time())

    async def _route(self, data: bytes, reply: str, headers: dict[str, str] | None = None) -> None:
        # `aiub.route`: the decision and the dispatch, a child of the caller's attempt (shared/spans.py).
        span = self._tracer.start_span("aiub.route", context=spans.extract(headers), kind=spans.SpanKind.CONSUMER)
        try:
            await self._place(data, reply, span)
        except Exception as e:  # a request must get an answer even when placing it failed
            log.error("routing_failed", error=repr(e))
            spans.failed(span, repr(e))
            with contextlib.suppress(Exception):
                await self._refuse(reply, "", RouterFailed("the router failed to place the request"))
        finally:
            span.end()

    async def _place(self, data: bytes, reply: str, span: spans.Span = spans.INVALID_SPAN) -> None:
        if not reply:
            log.warning("request_without_reply_subject")
            return
        try:
            request = request_decoder.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            await self._refuse(reply, "", BadRequest(f"malformed InferenceRequest: {e}", code="bad_request"))
            return
        tracing.bind(tracing.request_id(request))  # this task's log lines carry the client-visible id
        config = self._config  # read once: a new revision applies to the next request, not this one
        decided = self.plan(request, config)
        _annotate(span, request, decided)
        if decided.refusal is not None:
            refusal = decided.refusal
            log.info("request_refused", model=request.model, reason=refusal.message)
            spans.failed(span, refusal.message)
            await self._refuse(reply, request.attempt, refusal)
            return
        label = DECISION_LABELS[decided.routed_by or "default"]
        self.metrics.decisions.labels(strategy=label).inc()
        tried: list[str] = [*decided.skipped]
        for target in decided.targets:
            if await self._dispatch(config, request, decided, target, reply, span, tried):
                return
        message = f"no provider could take the request for {request.model!r}: tried " + ", ".join(tried)
        log.warning("request_unplaced", model=request.model, tried=tried)
        spans.failed(span, message)
        # Full queues drain in about a generation's time: a client told when to come back (the
        # OpenAI SDKs read Retry-After) spreads its retries instead of hammering at once.
        busy = any(t.endswith(BUSY_SUFFIX) for t in tried)
        await self._refuse(reply, request.attempt,
                           ServiceUnavailable(message, retry_after=BUSY_RETRY_AFTER_S if busy else None))

    async def _dispatch(self, config: Config, request: InferenceRequest, decided: Plan, target: Target, reply: str,
                        span: spans.Span, tried: list[str]) -> bool:
        """Offer the request to one target's workers. True when that settled it (a worker accepted, or
        one took it and fell silent); False, with the reason added to `tried`, to try the next target."""
        # The worker checks the caller's scope against the model the caller asked for.
        routed = request if target.model == request.model else msgspec.structs.replace(
            request, model=target.model, requested_model=request.requested_model or request.model)
        order = WorkOrder(request=routed, reply_inbox=reply, provider=target.provider,
                          backend_model=target.backend_model, routed_by=decided.routed_by or "default")
        # Half the caller's Accepted deadline: a worker that has not answered by then is hung or
        # frozen (a live one accepts in milliseconds), and the caller still has time to retry.
        timeout = config.runtime.deadlines.accepted_s / 2
        try:
            answer = await self._nc.request(subjects.work(target.provider), encode(order), timeout=timeout,
                                             headers=spans.inject(tracing.headers(request), span))
        except NoRespondersError:
            tried.append(f"{target.provider} (no worker running)")
            span.add_event("aiub.skipped", {"aiub.provider": target.provider, "reason": "no worker running"})
            return False
        except NatsTimeout:
            # Not placed elsewhere here: the silent worker may still wake and run this very
            # attempt. The caller retries with a new attempt instead, so a late Accepted for
            # this one is stale and cancelled, and NATS picks the queue group's worker anew.
            log.warning("dispatch_timed_out", model=request.model, provider=target.provider, timeout_s=timeout)
            # seq -1, like an error a caller makes up itself: a caller whose Accepted came first
            # cancels that worker (older callers do not know this code).
            unresponsive = ServiceUnavailable(f"a {target.provider} worker took the request and did not "
                                              f"answer within {timeout:g} s", code=WORKER_UNRESPONSIVE)
            await self._nc.publish(reply, encode(unresponsive.frame(request.attempt, -1, retryable=True,
                                                                    provider=target.provider)))
            spans.failed(span, unresponsive.message)
            return True
        try:
            reply_frame = frame_decoder.decode(answer.data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            tried.append(f"{target.provider} (unreadable answer)")
            return False
        match reply_frame:
            case Accepted(worker_id=worker_id):
                self._placed(request, decided, target.provider, worker_id)
                span.set_attributes({"aiub.provider": target.provider, "aiub.worker_id": worker_id})
                await self._offer_hedge(config, request, decided, target, reply)
                return True
            case Busy(worker_id=worker_id):
                self.load.refused(target.provider, worker_id)
                tried.append(target.provider + BUSY_SUFFIX)
                span.add_event("aiub.skipped", {"aiub.provider": target.provider, "reason": "busy"})
            case _:
                tried.append(f"{target.provider} (unexpected {type(reply_frame).__name__})")
        return False

    def _placed(self, request: InferenceRequest, decided: Plan, provider: str, worker_id: str) -> None:
        self.load.placed(provider, worker_id, request.attempt, self._clock())
        self.metrics.distribution.labels(provider=provider).inc()
        # The original provider of a fallback: the one the client already tried, or the one
        # this router tried first and found busy or without a worker.
        original = request.excluded[0] if request.excluded else decided.candidates[0]
        if original != provider:
            self.metrics.fallbacks.labels(original_provider=original).inc()
            log.warning("fallback_triggered", model=request.model, original_provider=original,
                        provider=provider, attempt=request.attempt_number)
        log.debug("request_routed", model=request.model, provider=provider,
                  routed_by=decided.routed_by, strategy=decided.strategy, attempt=request.attempt)

    async def _offer_hedge(self, config: Config, request: InferenceRequest, decided: Plan, placed: Target,
                           reply: str) -> None:
        """Tell the caller it may hedge this attempt (services/router/hedging.py), for models with `hedging`."""
        if not config.mappings.hedging:
            return
        offer = hedging.offer(config, request, provider=placed.provider, model=placed.model,
                              others=[(t.provider, t.model) for t in decided.targets if t is not placed],
                              usage=self.usage, now=self._clock())
        if offer is not None:
            with contextlib.suppress(Exception):
                await self._nc.publish(reply, encode(offer))

    async def _refuse(self, reply: str, attempt: str, refusal: AiubError) -> None:
        self.metrics.refusals.labels(reason=refusal.code or refusal.type).inc()
        await self._nc.publish(reply, encode(refusal.frame(attempt, 0)))


def _annotate(span: spans.Span, request: InferenceRequest, decided: Plan) -> None:
    if span.is_recording():
        span.set_attributes({"aiub.request_id": tracing.request_id(request), "aiub.attempt": request.attempt,
                             "aiub.attempt_number": request.attempt_number, "gen_ai.request.model": request.model,
                             "aiub.routed_by": decided.routed_by or "", "aiub.strategy": decided.strategy or "",
                             "aiub.candidates": list(decided.candidates), "aiub.excluded": list(request.excluded)})
