"""When `aiub up` restarts its embedded NATS, and when it gives up. No I/O, no clock of its own.

Rules:
- The bus is `up`, `down` (a restart is scheduled), `starting` (the shell is starting it), or
  `gave_up` (final).
- An `up` bus is lost when its process exits, or when it misses `hung_after` liveness probes in
  a row (frozen: the port accepts, the server never says hello); a hung one is killed first.
- Every loss and every restart that does not come up is a failure. A failure schedules the
  next start after `first_delay_s`, doubled for each failure in a row, at most `max_delay_s`.
  A bus that stayed up `stable_after_s` before it was lost starts the row afresh.
- `give_up_after` failures within `window_s` end it: `aiub up` stops the stack and exits
  non-zero, so that whatever runs `aiub up` (systemd, a container runtime) takes over.
- An event the current state cannot receive raises `IllegalEvent` and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

Phase = Literal["up", "down", "starting", "gave_up"]


@dataclass(frozen=True, kw_only=True)
class Policy:
    first_delay_s: float = 0.25
    max_delay_s: float = 5.0
    give_up_after: int = 5
    window_s: float = 60.0
    stable_after_s: float = 30.0
    hung_after: int = 4


@dataclass(frozen=True, kw_only=True)
class State:
    phase: Phase = "up"
    started_at: float = 0.0
    misses: int = 0  # liveness probes missed in a row
    in_a_row: int = 0  # failures since the bus last stayed up `stable_after_s`
    failures: tuple[float, ...] = ()  # when each failure inside the window happened
    restart_at: float = 0.0
    down_since: float = 0.0


# -- events: what the shell saw --------------------------------------------------------------
@dataclass(frozen=True)
class Exited:
    code: int | None


@dataclass(frozen=True)
class ProbePassed:
    pass


@dataclass(frozen=True)
class ProbeMissed:
    pass


@dataclass(frozen=True)
class Tick:
    pass


@dataclass(frozen=True)
class Started:
    pass


@dataclass(frozen=True)
class StartFailed:
    reason: str


Event = Exited | ProbePassed | ProbeMissed | Tick | Started | StartFailed


# -- effects: what the shell does ------------------------------------------------------------
@dataclass(frozen=True)
class Kill:
    """Kill the (hung) process; it is already counted as lost."""


@dataclass(frozen=True)
class Lost:
    """Tell the user the bus is down and when it is tried again."""
    reason: str
    retry_in_s: float


@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class Recovered:
    down_for_s: float


@dataclass(frozen=True)
class GiveUp:
    reason: str


Effect = Kill | Lost | Start | Recovered | GiveUp


class IllegalEvent(Exception):
    pass


def decide(policy: Policy, state: State, event: Event, now: float) -> tuple[State, list[Effect]]:
    match state.phase, event:
        case "up", Exited(code):
            return _fail(policy, state, f"nats-server exited with {code}", now)
        case "up", ProbeMissed():
            if state.misses + 1 < policy.hung_after:
                return replace(state, misses=state.misses + 1), []
            after, effects = _fail(policy, state, f"nats-server did not answer {policy.hung_after} liveness "
                                                  f"probes in a row (frozen?)", now)
            return after, [Kill(), *effects]
        case "up", ProbePassed():
            return replace(state, misses=0), []
        case "up", Tick():
            return state, []
        case "down", Tick():
            if now < state.restart_at:
                return state, []
            return replace(state, phase="starting"), [Start()]
        case "starting", Started():
            return replace(state, phase="up", started_at=now, misses=0), [Recovered(now - state.down_since)]
        case "starting", StartFailed(reason):
            return _fail(policy, state, reason, now)
    raise IllegalEvent(f"{type(event).__name__} while the bus is {state.phase}")


def _fail(policy: Policy, state: State, reason: str, now: float) -> tuple[State, list[Effect]]:
    stayed_up = state.phase == "up" and now - state.started_at >= policy.stable_after_s
    in_a_row = 1 if stayed_up else state.in_a_row + 1
    failures = (*(t for t in state.failures if now - t < policy.window_s), now)
    down_since = now if state.phase == "up" else state.down_since
    if len(failures) >= policy.give_up_after:
        return (replace(state, phase="gave_up", in_a_row=in_a_row, failures=failures, down_since=down_since),
                [GiveUp(f"{reason}; {len(failures)} failures within {policy.window_s:g}s")])
    delay = min(policy.max_delay_s, policy.first_delay_s * 2 ** (in_a_row - 1))
    return (replace(state, phase="down", misses=0, in_a_row=in_a_row, failures=failures, restart_at=now + delay,
                    down_since=down_since), [Lost(reason, delay)])
