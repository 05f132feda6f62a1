"""The worker: serves `aiub.work.<provider>` for one or more providers.

The subject an order arrives on names its provider; an order that names another is refused
(an error frame to its caller), never served on the wrong provider's slots or backend.
Per provider it has `max_concurrency` slots and a bounded queue; when both are full it
answers `Busy` so the router tries the next candidate at once. Otherwise it answers
`Accepted` (to the router, and as frame 0 to the caller), calls the backend, and streams
frames to the caller's inbox. A `Cancel` on its control subject cancels the attempt's task,
which closes the backend connection. Every attempt ends with one `Outcome` event; metrics and
the attempt's log line are written from it after the last frame has gone (see `telemetry`).
Each attempt's task binds the request's id (header `Aiub-Request-Id`) into its log context.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError

from services.workers import attempt_spans
from services.workers.adapters import adapter_for
from services.workers.backend import BackendReport, call_backend
from services.workers.backend_load import BackendLoad, parse
from services.workers.http import BackendHttp
from services.workers.model_listing import ModelListResponder
from services.workers.telemetry import WorkerTelemetry
from shared import logs, scope, spans, subjects, tracing
from shared.client import new_id
from shared.config import Config
from shared.errors import (
    AiubError,
    BadRequest,
    DeadlineExceeded,
    Forbidden,
    ServiceUnavailable,
    Unauthorized,
    UpstreamError,
)
from shared.messages import (
    ATTEMPT_HEADER,
    ATTEMPT_RUNNING,
    ATTEMPT_UNKNOWN,
    Accepted,
    Busy,
    Chunk,
    Heartbeat,
    LoadReport,
    Outcome,
    OutcomeKind,
    Result,
    ResultPart,
    WorkOrder,
    cancel_decoder,
    encode,
    work_decoder,
)
from shared.metrics import ProviderMetrics

log = logs.get("worker")

SHUTDOWN = "shutdown"  # the cancel message of attempts cut short by the worker's own stop
STALLED = "stalled"  # the cancel message when the caller says the provider missed a deadline


@dataclass
class Slots:
    """Admission for one provider: `capacity` running at once, `queue_capacity` waiting."""

    capacity: int
    queue_capacity: int
    running: int = 0
    queued: int = 0
    semaphore: asyncio.Semaphore = field(init=False)

    def __post_init__(self) -> None:
        self.semaphore = asyncio.Semaphore(self.capacity)

    def queued_now(self) -> float:
        return self.queued

    def running_now(self) -> float:
        return self.running

    @property
    def full(self) -> bool:
        return self.running + self.queued >= self.capacity + self.queue_capacity


def _until(deadline: float) -> asyncio.Timeout:
    """A timeout at the request's wall-clock deadline (0: none), on the loop's clock."""
    if not deadline:
        return asyncio.timeout(None)
    return asyncio.timeout_at(asyncio.get_running_loop().time() + max(0.0, deadline - time.time()))


class FrameSender:
    """Numbers the frames of one attempt and tells when the caller last heard from us."""

    def __init__(self, nc: Client, inbox: str, attempt: str) -> None:
        self._nc = nc
        self.inbox = inbox
        self.attempt = attempt
        self._seq = 0
        self.last_sent = time.monotonic()
        self.content_sent = False  # after content, a failure can no longer be retried elsewhere

    @property
    def max_payload(self) -> int:
        return self._nc.max_payload

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def send(self, frame: msgspec.Struct) -> None:
        self.last_sent = time.monotonic()
        if not self.content_sent and isinstance(frame, Chunk | Result | ResultPart):
            self.content_sent = True
        await self._nc.publish(self.inbox, encode(frame))


class Worker:
    def __init__(self, nc: Client, config: Config, providers: list[str], http: BackendHttp,
                 worker_id: str | None = None, metrics: ProviderMetrics | None = None,
                 tracer: spans.Tracer | None = None) -> None:
        unknown = [p for p in providers if p not in config.providers]
        if unknown:
            raise ValueError(f"unknown provider(s) {', '.join(unknown)}; configured: {', '.join(config.providers)}")
        self._nc = nc
        self._config = config
        self._tracer = tracer or spans.tracer("aiub.worker")
        self.providers = providers
        self._http = http
        self.worker_id = worker_id or f"w{new_id()}"
        self.control_subject = subjects.control(self.worker_id)
        self.slots = {p: Slots(config.providers[p].max_concurrency, config.providers[p].queue_size)
                      for p in providers}
        self._attempts: dict[str, asyncio.Task[None]] = {}
        self._callers: dict[str, tuple[str, float]] = {}  # attempt -> (its caller's inbox, accepted at)
        self._subs: list[Subscription] = []
        self._background: list[asyncio.Task[None]] = []
        self.served = 0
        self._bus_secret = config.runtime.auth.bus_secret()  # None: every request on the bus is trusted
        self.telemetry = WorkerTelemetry(metrics, log)
        self._listing = ModelListResponder(nc, config, providers, http)
        self.backend_load: dict[str, BackendLoad] = {}  # provider -> its backend's last readable load
        for provider, slots in self.slots.items():
            self.telemetry.watch(provider, queued=slots.queued_now, running=slots.running_now)

    async def start(self) -> None:
        for provider in self.providers:
            self._subs.append(await self._nc.subscribe(
                subjects.work(provider), queue=subjects.worker_queue(provider), cb=self._work_handler(provider)))
        self._subs.extend(await self._listing.start())
        await self._nc.subscribe(self.control_subject, cb=self._on_cancel)
        self._background.append(asyncio.create_task(self._report_load()))
        for provider in self.providers:
            if self._config.providers[provider].load_endpoint:
                self._background.append(asyncio.create_task(self._poll_backend_load(provider)))
        self._background.append(asyncio.create_task(self._watch_callers()))

    def reconfigure(self, config: Config) -> None:
        """A new config revision (shared/config_watch.py): attempts accepted from now on call the
        backend with its provider settings; running ones finish on theirs. Slots, intervals and the
        served providers stay as started (shared/config/revisions.py names them in the log)."""
        self._config = config
        self._listing.reconfigure(config)

    def _forget(self, attempt: str) -> None:
        self._attempts.pop(attempt, None)
        self._callers.pop(attempt, None)

    async def stop(self, grace_s: float = 8.0) -> None:
        """Stop taking work, let in-flight attempts finish within `grace_s`, then cancel the rest.
        The default stays under the 10 s that `aiub up` and `docker stop` wait before SIGKILL, so a
        hung backend costs its attempts an error frame, not the worker a clean exit."""
        for sub in self._subs:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        pending = list(self._attempts.values())
        if pending:
            _, still_running = await asyncio.wait(pending, timeout=grace_s)
            for task in still_running:
                task.cancel(SHUTDOWN)
            if still_running:
                await asyncio.wait(still_running, timeout=1.0)
        for task in self._background:
            task.cancel()

    def _work_handler(self, provider: str) -> Callable[[Msg], Awaitable[None]]:
        async def on_work(msg: Msg) -> None:
            await self._on_work(provider, msg)

        return on_work

    async def _on_work(self, provider: str, msg: Msg) -> None:
        """An order on `aiub.work.<provider>`: the subject names the provider, whatever the order says."""
        try:
            order = work_decoder.decode(msg.data)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            log.warning("work_order_unreadable", error=str(e))
            return
        if order.provider != provider:
            # A router bug or a hand-made order: serving it would run one provider's backend on
            # another's slots, or find no slots at all.
            log.warning("work_order_misaddressed", subject_provider=provider, order_provider=order.provider,
                        attempt=order.request.attempt)
            await self._refuse(msg, order, provider, BadRequest(
                f"a work order for provider {order.provider!r} arrived on {subjects.work(provider)}: the subject "
                "decides the provider, so it was not served", code="provider_mismatch"))
            return
        slots = self.slots[provider]
        attempt = order.request.attempt
        if self._bus_secret is not None and not await self._in_scope(msg, order):
            return
        if slots.full:
            await msg.respond(encode(Busy(attempt=attempt, seq=0, provider=provider, worker_id=self.worker_id)))
            return
        accepted = encode(Accepted(attempt=attempt, seq=0, provider=provider, worker_id=self.worker_id,
                                   control=self.control_subject))
        try:
            await msg.respond(accepted)
            await self._nc.publish(order.reply_inbox, accepted)
        except Exception as e:  # the bus failed us mid-answer: nothing was started, nothing to count
            log.warning("accept_failed", error=repr(e))
            return
        slots.queued += 1
        task = asyncio.create_task(self._serve(order, slots, tracing.from_headers(msg.headers, order.request),
                                               spans.extract(msg.headers)))
        self._attempts[attempt] = task
        self._callers[attempt] = (order.reply_inbox, time.monotonic())
        task.add_done_callback(lambda _: self._forget(attempt))

    async def _in_scope(self, msg: Msg, order: WorkOrder) -> bool:
        """Whoever published the request, serve it only within a scope the gateway signed."""
        assert self._bus_secret is not None
        try:
            scope.verify(order.request.scope, self._bus_secret, order.request.requested_model or order.request.model,
                         time.time())
        except scope.ScopeRejected as e:
            log.warning("request_out_of_scope", model=order.request.model, status=e.status, reason=e.message)
            refusal = (Unauthorized if e.status == 401 else Forbidden)(e.message, code="invalid_scope")
            await self._refuse(msg, order, order.provider, refusal)
            return False
        return True

    async def _refuse(self, msg: Msg, order: WorkOrder, provider: str, refusal: AiubError) -> None:
        """Take the order (so the router stops looking: every worker would say the same) and
        answer its caller with an error instead of serving it."""
        attempt = order.request.attempt
        await msg.respond(encode(Accepted(attempt=attempt, seq=0, provider=provider, worker_id=self.worker_id,
                                          control=self.control_subject)))
        await self._nc.publish(order.reply_inbox, encode(refusal.frame(attempt, 0, provider=provider)))

    async def _on_cancel(self, msg: Msg) -> None:
        if not msg.data:  # a caller's liveness probe: being here is part of the answer
            if msg.reply:
                attempt = msg.headers.get(ATTEMPT_HEADER) if msg.headers else None
                with contextlib.suppress(Exception):
                    await msg.respond(b"" if attempt is None
                                      else ATTEMPT_RUNNING if attempt in self._attempts else ATTEMPT_UNKNOWN)
            return
        try:
            cancel = cancel_decoder.decode(msg.data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            return
        task = self._attempts.get(cancel.attempt)
        if task is not None:  # the attempt's own task logs it, with the request's id
            task.cancel(STALLED if cancel.stalled else cancel.reason)

    async def _serve(self, order: WorkOrder, slots: Slots, request_id: str,
                     parent: spans.Context | None = None) -> None:
        tracing.bind(request_id, provider=order.provider)
        span = attempt_spans.start_serve(self._tracer, order, request_id, parent)
        sender = FrameSender(self._nc, order.reply_inbox, order.request.attempt)
        heartbeat = asyncio.create_task(self._heartbeat(sender))
        started = time.monotonic()
        report = BackendReport(kind="cancelled", status=499)
        waiting = True
        calling_since: float | None = None
        try:
            async with slots.semaphore:
                slots.queued -= 1
                waiting = False
                slots.running += 1
                calling_since = time.monotonic()
                try:
                    spec = self._config.providers[order.provider]
                    backend_span = attempt_spans.start_backend(self._tracer, span, order, spec.base_url)
                    try:
                        async with _until(order.request.deadline):
                            report = await call_backend(self._http, adapter_for(spec), spec, order, sender)
                    finally:
                        attempt_spans.end_backend(backend_span, report)
                finally:
                    slots.running -= 1
        except TimeoutError:
            # The caller's whole-request deadline passed: it has already given up; stop the backend.
            report = BackendReport(kind=self._deadline_kind(sender, calling_since), status=504)
            await self._fail(sender, order, DeadlineExceeded("the request did not finish within its deadline"))
        except Exception as e:  # a bug or an input nobody foresaw must still end the stream
            log.error("attempt_crashed", error=repr(e))
            report = BackendReport(kind="server_error", status=502)
            await self._fail(sender, order, UpstreamError(
                f"the {order.provider} worker failed on this request ({type(e).__name__})", code="worker_error"))
        except asyncio.CancelledError as e:
            # The caller's reason travels as the cancel message: a stall counts against the provider,
            # a client that went away does not, and the request's own deadline only after a silence.
            reason = e.args[0] if e.args else ""
            kind: OutcomeKind = "timeout" if reason == STALLED else "cancelled"
            if reason == "deadline":
                kind = self._deadline_kind(sender, calling_since)
            report = BackendReport(kind=kind, status=499)
            if e.args == (SHUTDOWN,):
                # The caller is still listening: tell it now (retryable before any content) rather
                # than let it wait out its idle deadline.
                await self._fail(sender, order, ServiceUnavailable(f"the {order.provider} worker shut down",
                                                                   code="worker_shutdown"))
            raise
        finally:
            if waiting:
                slots.queued -= 1
            heartbeat.cancel()
            self.served += 1
            outcome = await self._publish_outcome(order, report, time.monotonic() - started)
            self.telemetry.record(outcome)
            self.telemetry.log_outcome(outcome)
            attempt_spans.end_serve(span, outcome)

    def _deadline_kind(self, sender: FrameSender, calling_since: float | None) -> OutcomeKind:
        """The request's own deadline ended the attempt. That is the client's choice (an SDK
        `timeout=2` against a slow provider), unless the backend had said nothing for as long as
        a first token may take: a wedged backend answers every request with a heartbeat-kept
        silence until its deadline, and must still open its circuit."""
        silent_s = 0.0 if calling_since is None or sender.content_sent else time.monotonic() - calling_since
        return "timeout" if silent_s >= self._config.runtime.deadlines.first_token_s else "deadline"

    async def _fail(self, sender: FrameSender, order: WorkOrder, failure: AiubError) -> None:
        """An error frame from the worker itself; retryable elsewhere only before any content."""
        with contextlib.suppress(Exception):
            await sender.send(failure.frame(sender.attempt, sender.next_seq(), retryable=not sender.content_sent,
                                            provider=order.provider))

    async def _heartbeat(self, sender: FrameSender) -> None:
        interval = self._config.runtime.worker.heartbeat_s
        while True:
            await asyncio.sleep(max(0.0, sender.last_sent + interval - time.monotonic()))
            if time.monotonic() - sender.last_sent >= interval:
                await sender.send(Heartbeat(attempt=sender.attempt, seq=sender.next_seq()))

    async def _watch_callers(self) -> None:
        """Every `caller_check_s`, ask the caller of each attempt running at least that long
        whether it still waits. One loop for all attempts: a short request costs nothing."""
        interval = self._config.runtime.worker.caller_check_s
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            due = [(attempt, inbox) for attempt, (inbox, since) in self._callers.items() if now - since >= interval]
            await asyncio.gather(*(self._check_caller(attempt, inbox, min(1.0, interval)) for attempt, inbox in due))

    async def _check_caller(self, attempt: str, inbox: str, timeout_s: float) -> None:
        """Cancel the attempt once nobody waits for it: its caller's process is gone (NATS answers
        `no responders` for its inbox) or says it no longer knows the attempt. A slow answer, or
        none, proves nothing: the attempt goes on."""
        try:
            reply = await self._nc.request(inbox, b"", timeout=timeout_s)
            gone = reply.data == ATTEMPT_UNKNOWN
        except NoRespondersError:
            gone = True
        except Exception:
            return
        task = self._attempts.get(attempt)
        if gone and task is not None:
            log.info("caller_gone", attempt=attempt)
            task.cancel("client_gone")

    async def _publish_outcome(self, order: WorkOrder, report: BackendReport, latency: float) -> Outcome:
        outcome = Outcome(provider=order.provider, model=order.request.model, request_id=order.request.id,
                          attempt=order.request.attempt, worker_id=self.worker_id, kind=report.kind,
                          status=report.status, latency_s=latency, ttft_s=report.ttft_s,
                          prompt_tokens=report.usage.prompt_tokens, completion_tokens=report.usage.completion_tokens,
                          retry_after=report.retry_after, at=time.time())
        with contextlib.suppress(Exception):
            await self._nc.publish(subjects.outcome(order.provider), encode(outcome))
        return outcome

    async def _report_load(self) -> None:
        interval = self._config.runtime.worker.load_report_s
        while True:
            for provider, slots in self.slots.items():
                backend = self.backend_load.get(provider, BackendLoad())
                report = LoadReport(provider=provider, worker_id=self.worker_id, in_flight=slots.running,
                                    queued=slots.queued, capacity=slots.capacity,
                                    queue_capacity=slots.queue_capacity, at=time.time(),
                                    backend_running=backend.running, backend_waiting=backend.waiting,
                                    backend_kv_usage=backend.kv_usage)
                with contextlib.suppress(Exception):
                    await self._nc.publish(subjects.load(provider), encode(report))
            await asyncio.sleep(interval)

    async def _poll_backend_load(self, provider: str) -> None:
        """Read the backend's own load every `backend_load_s` (never per request). A failed or
        unreadable read drops what we knew: a stale number would pose as the present."""
        spec = self._config.providers[provider]
        assert spec.load_endpoint is not None
        interval = self._config.runtime.worker.backend_load_s
        key = spec.api_key()
        headers = {"authorization": f"Bearer {key}"} if key else {}
        while True:
            try:
                status, body = await self._http.fetch("GET", spec.base_url + spec.load_endpoint, headers=headers,
                                                      timeout_s=max(0.2, min(2.0, interval)))
                load = parse(spec.load_endpoint, status, body)
            except Exception:
                load = None
            if load is None:
                self.backend_load.pop(provider, None)
            else:
                self.backend_load[provider] = load
            await asyncio.sleep(interval)
