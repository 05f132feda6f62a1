"""What the client library decides for a call, with no I/O and no clock of its own.

`shared/client.py` is the shell: it waits on NATS and reads its injected clock; every decision
is a plain function of that reading (`now`, seconds on the client's monotonic clock), so tests
move time by hand. Two concerns:

Deadlines of one attempt (`Timers`, fixed when the attempt starts at `start`):
- stage `accepted` (no `Accepted` yet): until `start + accepted_s`.
- stage `first_token` (a stream, no content yet): until `start + first_token_s`, or `idle_s`
  after the last frame, whichever is first. Heartbeats are frames.
- stage `answer` (not a stream, no content yet): `idle_s` after the last frame; a whole answer
  may take longer than any first token, the worker's heartbeats say it is alive.
- stage `idle` (content has reached the consumer): `idle_s` after the last frame.
- Every stage ends at the request's own deadline (`request_by`) at the latest.
- A deadline has passed when `now >= until`. A timer that wakes earlier (uvloop rounds to ms)
  decides nothing: the shell waits again.
- Liveness: once the worker named its control subject, `liveness_s` after the last frame (or
  the last probe) and before the deadline, the shell asks NATS whether that worker still
  exists, waiting at most `LIVENESS_PROBE_TIMEOUT_S`, the time left, and never under 50 ms.
- A worker that answers it no longer runs the attempt sent its last frames already: they were
  lost (the bus restarted under them). Frames it sent before answering are already in this
  process, so unless one arrives within `FORGOTTEN_GRACE_S` the attempt ends with a
  `frames_lost` error, retryable while no content has reached the consumer, instead of
  waiting out `idle_s` for frames that will never come.
- A passed deadline is a 504 `deadline_exceeded`. It is retryable only in `first_token` or
  `answer` with a known provider; it is the provider's failure (`stalled`, told to the worker
  in its Cancel) unless nobody had accepted yet or the request's own deadline passed.

What a failed attempt's `Error` means (`after_error`, state carried in `Fallback`):
- Retry when it is retryable, or a provider's `context_length_exceeded`, and no content has
  reached the consumer, retries are left, a provider is named and the request's deadline has
  not passed. Otherwise give up.
- A retry for context length asks for the next larger-context model (`context_fallback` + 1);
  a provider whose worker died or hung, or whose frames the bus lost, is kept once (its other
  workers may serve), excluded the second time; any other failed provider is excluded.
- Giving up with the router's "nothing left to try" after a provider's own error yields that
  provider's error (a 429 keeps its Retry-After); any other final error is yielded as is.
- An error the client made up (`seq == -1`: a deadline, lost frames) leaves the worker maybe
  still generating: the shell cancels it (`cancels_worker`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

from shared.config import Deadlines
from shared.errors import AiubError, DeadlineExceeded, UpstreamError
from shared.messages import CONTEXT_LENGTH_EXCEEDED, FRAMES_LOST, WORKER_GONE, WORKER_UNRESPONSIVE, Error

Stage = Literal["accepted", "first_token", "answer", "idle"]

LIVENESS_PROBE_TIMEOUT_S = 1.0
FORGOTTEN_GRACE_S = 0.25
MIN_PROBE_TIMEOUT_S = 0.05
# The router's "nothing left to try": after a provider's own error, that error says more.
NOTHING_LEFT = ("no_provider_available", CONTEXT_LENGTH_EXCEEDED)


def own_error(error: AiubError, attempt: str, *, retryable: bool = False, provider: str | None = None) -> Error:
    """An `Error` the client makes up itself (`seq == -1`), not one a worker or router sent."""
    return error.frame(attempt, -1, retryable=retryable, provider=provider)


# -- deadlines of one attempt -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Timers:
    accept_by: float
    first_token_by: float
    request_by: float
    idle_s: float
    liveness_s: float
    last_frame_at: float
    probe_at: float
    lost_by: float = math.inf  # the worker said it finished the attempt: a frame must come by then


def start(deadlines: Deadlines, now: float, request_by: float) -> Timers:
    return Timers(accept_by=min(now + deadlines.accepted_s, request_by),
                  first_token_by=min(now + deadlines.first_token_s, request_by), request_by=request_by,
                  idle_s=deadlines.idle_s, liveness_s=deadlines.liveness_s, last_frame_at=now, probe_at=now)


def frame_arrived(timers: Timers, now: float) -> Timers:
    return dataclasses.replace(timers, last_frame_at=now, probe_at=now + timers.liveness_s, lost_by=math.inf)


def probed(timers: Timers, now: float) -> Timers:
    """The worker answered the probe, or the answer proved nothing: ask again after `liveness_s`."""
    return dataclasses.replace(timers, probe_at=now + timers.liveness_s)


def forgotten(timers: Timers, now: float) -> Timers:
    """The worker no longer runs the attempt: its last frames come within the grace, or never.
    Asking again would tell nothing new, so no probe until a frame arrives."""
    return dataclasses.replace(timers, probe_at=math.inf, lost_by=min(timers.lost_by, now + FORGOTTEN_GRACE_S))


def stage(*, accepted: bool, content: bool, stream: bool) -> Stage:
    if not accepted:
        return "accepted"
    if content:
        return "idle"
    return "first_token" if stream else "answer"


def deadline(timers: Timers, stage: Stage) -> float:
    """When the stage's deadline passes."""
    idle_by = timers.last_frame_at + timers.idle_s
    if stage == "accepted":
        return timers.accept_by
    if stage == "first_token":
        return min(timers.first_token_by, idle_by)
    return min(idle_by, timers.request_by)


def wake_at(timers: Timers, stage: Stage, *, probing: bool) -> float:
    """When the shell must look again if no frame arrives: the deadline, or the probe's turn."""
    until = min(deadline(timers, stage), timers.lost_by)
    return min(until, timers.probe_at) if probing else until


@dataclass(frozen=True, slots=True)
class Wait:
    """Nothing is due yet (the timer woke early): wait again."""


@dataclass(frozen=True, slots=True)
class Probe:
    """Ask NATS whether the worker's control subject still has a subscriber."""

    timeout_s: float


@dataclass(frozen=True, slots=True)
class Expired:
    """The stage's deadline passed: end the attempt with `Error`."""

    stage: Stage
    stalled: bool  # the provider's failure (first token or idle), not the request's own deadline
    error: Error


Wake = Wait | Probe | Expired


def on_wake(timers: Timers, stage: Stage, *, probing: bool, now: float, attempt: str,
            provider: str | None) -> Wake:
    """The timer fired with no frame: what is due at `now`."""
    until = deadline(timers, stage)
    if now < until:
        if now >= timers.lost_by:
            return Expired(stage, False, frames_lost_error(attempt, provider, content=stage == "idle"))
        if probing and now >= timers.probe_at:
            return Probe(min(LIVENESS_PROBE_TIMEOUT_S, max(MIN_PROBE_TIMEOUT_S, until - now)))
        return Wait()
    stalled = stage != "accepted" and now < timers.request_by
    return Expired(stage, stalled, deadline_error(attempt, stage, provider, passed_request=not now < timers.request_by))


def deadline_error(attempt: str, stage: Stage, provider: str | None, *, passed_request: bool) -> Error:
    if passed_request:
        message = "the request did not finish within its deadline"
    elif stage == "accepted":
        message = "no worker accepted the request in time"
    elif stage == "first_token":
        message = f"provider {provider} sent no first token in time"
    elif stage == "answer":
        message = f"provider {provider} went silent before answering"
    else:
        message = f"provider {provider} went silent mid-response"
    # Only a timeout before the first token is worth trying elsewhere.
    retryable = stage in ("first_token", "answer") and provider is not None
    return own_error(DeadlineExceeded(message), attempt, retryable=retryable, provider=provider)


def worker_gone_error(attempt: str, provider: str | None, *, content: bool) -> Error:
    """The liveness probe found no subscriber: the worker process is gone."""
    return own_error(UpstreamError(f"the worker serving provider {provider} stopped mid-request", code=WORKER_GONE),
                     attempt, retryable=not content, provider=provider)


def frames_lost_error(attempt: str, provider: str | None, *, content: bool, detail: str = "") -> Error:
    """Frames the worker sent never arrived: the bus lost them, the provider did nothing wrong."""
    message = f"frames of provider {provider}'s answer were lost between worker and gateway"
    return own_error(UpstreamError(message + (f" ({detail})" if detail else ""), code=FRAMES_LOST),
                     attempt, retryable=not content, provider=provider)


# -- what a failed attempt means -----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Fallback:
    """What the next attempt's request carries, and what the call remembers across attempts."""

    excluded: tuple[str, ...]
    retries_left: int
    context_fallback: int
    upstream: Error | None = None  # the last provider's own error, once we moved on from one
    troubled: frozenset[str] = frozenset()  # providers one of whose workers died or hung


@dataclass(frozen=True, slots=True)
class Retry:
    """Publish the request again with a new attempt id and the `Fallback`'s exclusions."""


@dataclass(frozen=True, slots=True)
class GiveUp:
    """End the call with `error`."""

    error: Error


def cancels_worker(final: Error) -> bool:
    """An error we made up: the worker may still be generating for nobody."""
    return final.seq == -1


def after_error(state: Fallback, final: Error, *, content: bool, now: float,
                request_by: float) -> tuple[Fallback, Retry | GiveUp]:
    """`content`: a content frame already reached the consumer."""
    provider = final.provider
    context_retry = final.error.code == CONTEXT_LENGTH_EXCEEDED and provider is not None
    if (provider is None or not (final.retryable or context_retry) or content or state.retries_left <= 0
            or now >= request_by):
        nothing_left = final.provider is None and final.seq == 0 and final.error.code in NOTHING_LEFT
        return state, GiveUp(state.upstream if state.upstream is not None and nothing_left else final)
    state = dataclasses.replace(state, retries_left=state.retries_left - 1, upstream=final)
    if context_retry:
        return dataclasses.replace(state, context_fallback=state.context_fallback + 1), Retry()
    if final.error.code in (WORKER_GONE, WORKER_UNRESPONSIVE, FRAMES_LOST) and provider not in state.troubled:
        return dataclasses.replace(state, troubled=state.troubled | {provider}), Retry()
    return dataclasses.replace(state, excluded=(*state.excluded, provider)), Retry()
