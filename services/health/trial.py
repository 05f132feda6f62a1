"""The trial inference sent when an open period ends: one real request, `max_tokens: 1`
(an embedding of one short input for a provider that serves only embedding models).

It goes straight to `aiub.work.<provider>` (not through a router, which would refuse an
unavailable provider) as a `WorkOrder` whose reply inbox this process subscribes to, with one
wildcard subscription for every trial. No responders, `Busy`, no answer, an `Error` frame, or
no `Result`/`Done` within `trial_timeout_s` fails it; `Accepted` then `Result` or `Done`
passes. A trial that runs out of time is cancelled at the worker with reason `deadline`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.errors import NoRespondersError
from nats.errors import TimeoutError as NatsTimeout

from shared import scope, subjects
from shared.client import new_id
from shared.config import Config
from shared.messages import (
    ATTEMPT_UNKNOWN,
    ATTEMPT_WANTED,
    Accepted,
    Busy,
    Cancel,
    Done,
    Error,
    Frame,
    InferenceRequest,
    RequestKind,
    Result,
    WorkOrder,
    encode,
    frame_decoder,
)

TRIAL_PROMPT = "Reply with one word."
TRIAL_ID_PREFIX = "trial-"  # request ids of trials, so the health service skips their Outcomes


def is_trial(request_id: str) -> bool:
    return request_id.startswith(TRIAL_ID_PREFIX)


def _embeddings(config: Config, provider: str, name: str) -> bool:
    model = config.providers[provider].models.get(name)
    return "embed" in name.lower() or (model is not None and any("embed" in c for c in model.capabilities))


def trial_model(config: Config, provider: str) -> tuple[str, str, RequestKind] | None:
    """(public name, backend name, kind) of the model a trial asks: a chat model if the provider
    serves one, else an embedding model; None if config names no model for it."""
    spec = config.providers[provider]
    names = list(spec.models)
    names += [m for m, match in config.mappings.exact_matches.items() if match.provider == provider]
    chat = [n for n in names if not _embeddings(config, provider, n)]
    for name in chat or names:
        match = config.mappings.exact_matches.get(name)
        backend = match.backend_model if match is not None and match.backend_model else spec.backend_model(name)
        return name, backend, "chat" if chat else "embedding"
    return None


def _body(model: str, kind: RequestKind) -> dict[str, object]:
    if kind == "embedding":
        return {"model": model, "input": TRIAL_PROMPT}
    return {"model": model, "max_tokens": 1, "stream": False, "messages": [{"role": "user", "content": TRIAL_PROMPT}]}


class TrialRunner:
    def __init__(self, nc: Client, config: Config) -> None:
        self._nc = nc
        self._config = config
        self._process_inbox = nc.new_inbox()
        self._waiting: dict[str, asyncio.Queue[Frame]] = {}
        self._sub: Subscription | None = None

    def reconfigure(self, config: Config) -> None:
        self._config = config  # the next trial picks its model and deadline from it

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._process_inbox + ".*", cb=self._on_frame)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()

    async def _on_frame(self, msg: Msg) -> None:
        queue = self._waiting.get(subjects.last_token(msg.subject))
        if not msg.data and msg.reply:  # the worker asking whether the trial still waits
            with contextlib.suppress(Exception):
                await msg.respond(ATTEMPT_WANTED if queue is not None else ATTEMPT_UNKNOWN)
            return
        if queue is None:
            return
        try:
            queue.put_nowait(frame_decoder.decode(msg.data))
        except (msgspec.ValidationError, msgspec.DecodeError):
            return

    async def run(self, provider: str, timeout_s: float) -> str | None:
        """None when the trial passed, else why it failed. Never outlives `timeout_s`."""
        model = trial_model(self._config, provider)
        if model is None:
            return None  # nothing to ask: the ramp's admitted traffic is the test
        public, backend, kind = model
        attempt = new_id()
        secret = self._config.runtime.auth.bus_secret()
        deadline = time.time() + timeout_s
        token = scope.issue(scope.Scope(tenant="health", models=(public,), expires_at=deadline), secret) if secret \
            else None
        request = InferenceRequest(id=TRIAL_ID_PREFIX + attempt, attempt=attempt, kind=kind, model=public,
                                   body=_body(public, kind), deadline=deadline, scope=token)
        order = WorkOrder(request=request, reply_inbox=subjects.inbox(self._process_inbox, attempt),
                          provider=provider, backend_model=backend, routed_by="health_trial")
        queue: asyncio.Queue[Frame] = asyncio.Queue()
        self._waiting[attempt] = queue
        control: str | None = None
        try:
            async with asyncio.timeout(timeout_s):
                answer = await self._nc.request(subjects.work(provider), encode(order),
                                                timeout=min(timeout_s, self._config.runtime.deadlines.accepted_s))
                first = frame_decoder.decode(answer.data)
                if isinstance(first, Busy):
                    return "every worker was busy"
                if not isinstance(first, Accepted):
                    return f"unexpected answer {type(first).__name__}"
                control = first.control
                while True:
                    match await queue.get():
                        case Result() | Done():
                            return None
                        case Error(status=status, error=error):
                            return f"HTTP {status}: {error.message}"
                        case _:
                            continue
        except NoRespondersError:
            return "no worker serves it"
        except (NatsTimeout, TimeoutError):
            if control is not None:
                with contextlib.suppress(Exception):
                    await self._nc.publish(control, encode(Cancel(attempt=attempt, reason="deadline")))
            return f"no answer within {timeout_s:g}s"
        except (msgspec.ValidationError, msgspec.DecodeError) as e:
            return f"unreadable answer: {e}"
        finally:
            self._waiting.pop(attempt, None)
