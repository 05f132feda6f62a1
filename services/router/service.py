"""The router: takes `InferenceRequest`s from `aiub.requests` and hands each to a worker.

Thin shell over `decision.plan`: provider states come from the health KV bucket, and the
dispatch is a NATS request to `aiub.work.<provider>`, answered at once by `Accepted` or
`Busy`. No responders or `Busy` → the next candidate immediately; nothing left → an `Error`
frame to the caller's inbox. Each message gets its own task: the NATS callback never awaits
a dispatch, so one slow worker cannot stall the subscription.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from services.router.decision import plan
from shared import logs, subjects
from shared.config import Config
from shared.health_view import HealthView
from shared.messages import Accepted, Busy, Error, ErrorBody, WorkOrder, encode, frame_decoder, request_decoder

log = logs.get("router")


class Router:
    def __init__(self, nc: Client, config: Config, health: HealthView, rng: random.Random | None = None) -> None:
        self._nc = nc
        self._config = config
        self._health = health
        self._rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()
        self.decisions: dict[str, int] = {}

    async def start(self) -> None:
        await self._nc.subscribe(subjects.REQUESTS, queue=subjects.ROUTER_QUEUE, cb=self._on_request)

    async def _on_request(self, msg: Msg) -> None:
        task = asyncio.create_task(self._route(msg.data, msg.reply))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _route(self, data: bytes, reply: str) -> None:
        if not reply:
            log.warning("request_without_reply_subject")
            return
        try:
            request = request_decoder.decode(data)
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            await self._refuse(reply, "", 400, f"malformed InferenceRequest: {e}", "invalid_request_error",
                               "bad_request")
            return
        decided = plan(self._config, request.model, capability=request.capability, excluded=request.excluded,
                       states=self._health.states, admit_draw=self._rng.random())
        if not decided.candidates:
            status, code = (404, "model_not_found") if decided.not_found else (503, "no_provider_available")
            log.info("request_refused", request_id=request.id, model=request.model, reason=decided.refusal)
            await self._refuse(reply, request.attempt, status, decided.refusal or "", "invalid_request_error"
                               if status == 404 else "service_unavailable", code)
            return
        self.decisions[decided.routed_by or "none"] = self.decisions.get(decided.routed_by or "none", 0) + 1
        tried: list[str] = []
        timeout = self._config.runtime.deadlines.accepted_s
        for provider in decided.candidates:
            order = WorkOrder(request=request, reply_inbox=reply, provider=provider,
                              backend_model=self._config.providers[provider].backend_model(request.model),
                              routed_by=decided.routed_by or "default")
            try:
                answer = await self._nc.request(subjects.work(provider), encode(order), timeout=timeout)
            except NoRespondersError:
                tried.append(f"{provider} (no worker running)")
                continue
            except NatsTimeout:
                tried.append(f"{provider} (worker did not answer in {timeout:g}s)")
                continue
            reply_frame = frame_decoder.decode(answer.data)
            match reply_frame:
                case Accepted():
                    log.debug("request_routed", request_id=request.id, model=request.model, provider=provider,
                              routed_by=decided.routed_by, attempt=request.attempt)
                    return
                case Busy():
                    tried.append(f"{provider} (busy)")
                case _:
                    tried.append(f"{provider} (unexpected {type(reply_frame).__name__})")
        message = f"no provider could take the request for {request.model!r}: tried " + ", ".join(tried)
        log.warning("request_unplaced", request_id=request.id, model=request.model, tried=tried)
        await self._refuse(reply, request.attempt, 503, message, "service_unavailable", "no_provider_available",
                           retryable=False)

    async def _refuse(self, reply: str, attempt: str, status: int, message: str, type_: str, code: str,
                      **extra: Any) -> None:
        frame = Error(attempt=attempt, seq=0, status=status, error=ErrorBody(message=message, type=type_, code=code),
                      **extra)
        await self._nc.publish(reply, encode(frame))
