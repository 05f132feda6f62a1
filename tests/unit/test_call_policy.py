"""The client library's decisions as plain function calls on a fake clock: both sides of every boundary."""

from __future__ import annotations

import pytest

from shared import call_policy as policy
from shared.call_policy import Expired, Fallback, GiveUp, Probe, Retry, Stage, Timers, Wait
from shared.config import Deadlines
from shared.messages import CONTEXT_LENGTH_EXCEEDED, WORKER_GONE, WORKER_UNRESPONSIVE, Error, ErrorBody

D = Deadlines(accepted_s=2, first_token_s=60, idle_s=10, liveness_s=3, total_s=600, retry_budget=2)
T0 = 1_000.0
EPS = 0.002  # uvloop's timers may wake this much early
REQUEST_BY = T0 + D.total_s


def timers(request_by: float = REQUEST_BY) -> Timers:
    return policy.start(D, T0, request_by)


def wake(t: Timers, stage: Stage, now: float, *, probing: bool = False, provider: str | None = "p") -> policy.Wake:
    return policy.on_wake(t, stage, probing=probing, now=now, attempt="a1", provider=provider)


def expired(t: Timers, stage: Stage, now: float, **kw: object) -> Expired:
    out = wake(t, stage, now, **kw)  # type: ignore[arg-type]
    assert isinstance(out, Expired), out
    return out


# -- which stage applies ---------------------------------------------------------------------------
@pytest.mark.parametrize(("accepted", "content", "stream", "expected"), [
    (False, False, True, "accepted"), (False, False, False, "accepted"),
    (True, False, True, "first_token"), (True, False, False, "answer"),
    (True, True, True, "idle"), (True, True, False, "idle"),
])
def test_the_stage_follows_accepted_content_and_stream(accepted: bool, content: bool, stream: bool,
                                                       expected: Stage) -> None:
    assert policy.stage(accepted=accepted, content=content, stream=stream) == expected


# -- accepted ------------------------------------------------------------------------------------------
def test_accepted_expires_at_accepted_s_not_before() -> None:
    t = timers()
    assert policy.wake_at(t, "accepted", probing=False) == T0 + D.accepted_s
    assert wake(t, "accepted", T0 + D.accepted_s - EPS, provider=None) == Wait()  # an early timer decides nothing
    out = expired(t, "accepted", T0 + D.accepted_s, provider=None)
    assert out.stage == "accepted" and not out.stalled  # nobody accepted: not a provider's failure
    assert (out.error.status, out.error.error.code, out.error.seq) == (504, "deadline_exceeded", -1)
    assert out.error.error.message == "no worker accepted the request in time"
    assert not out.error.retryable and out.error.provider is None


def test_accepted_is_capped_by_the_requests_own_deadline() -> None:
    t = timers(request_by=T0 + 1)
    assert wake(t, "accepted", T0 + 1 - EPS, provider=None) == Wait()
    out = expired(t, "accepted", T0 + 1, provider=None)
    assert out.error.error.message == "the request did not finish within its deadline" and not out.stalled


def test_frames_do_not_move_the_accepted_deadline() -> None:
    t = policy.frame_arrived(timers(), T0 + 1.5)  # a Busy, say
    assert wake(t, "accepted", T0 + D.accepted_s - EPS) == Wait()
    assert isinstance(wake(t, "accepted", T0 + D.accepted_s), Expired)


# -- first token ---------------------------------------------------------------------------------------
def test_first_token_is_lost_idle_s_after_the_last_frame() -> None:
    t = policy.frame_arrived(timers(), T0 + 1)  # Accepted
    assert wake(t, "first_token", T0 + 1 + D.idle_s - EPS) == Wait()
    out = expired(t, "first_token", T0 + 1 + D.idle_s)
    assert out.stalled and out.error.retryable and out.error.provider == "p"
    assert out.error.error.message == "provider p sent no first token in time"


def test_heartbeats_keep_a_slow_first_token_alive_until_first_token_s() -> None:
    t = timers()
    for at in range(1, 60, 9):  # a heartbeat every 9 s: idle_s (10) never passes
        t = policy.frame_arrived(t, T0 + at)
        assert wake(t, "first_token", min(T0 + at + 9, T0 + D.first_token_s - EPS)) == Wait()
    assert t.last_frame_at == T0 + 55
    assert policy.wake_at(t, "first_token", probing=False) == T0 + D.first_token_s
    assert wake(t, "first_token", T0 + D.first_token_s - EPS) == Wait()
    out = expired(t, "first_token", T0 + D.first_token_s)
    assert out.stage == "first_token" and out.stalled and out.error.retryable


def test_first_token_without_a_provider_is_not_retryable() -> None:
    assert not expired(timers(), "first_token", T0 + D.idle_s, provider=None).error.retryable


# -- a non-streaming answer ----------------------------------------------------------------------------
def test_a_non_streaming_answer_may_take_longer_than_first_token_s() -> None:
    t = timers()
    for at in range(1, 100, 9):
        t = policy.frame_arrived(t, T0 + at)
    assert T0 + 100 > t.first_token_by
    assert wake(t, "answer", t.last_frame_at + D.idle_s - EPS) == Wait()
    out = expired(t, "answer", t.last_frame_at + D.idle_s)
    assert out.stalled and out.error.retryable and out.error.error.message == "provider p went silent before answering"


def test_a_non_streaming_answer_ends_at_the_requests_deadline() -> None:
    t = policy.frame_arrived(timers(request_by=T0 + 5), T0 + 4)
    assert wake(t, "answer", T0 + 5 - EPS) == Wait()
    out = expired(t, "answer", T0 + 5)
    assert not out.stalled  # the request's own deadline, not the provider's failure
    assert out.error.error.message == "the request did not finish within its deadline"
    assert out.error.retryable  # the caller's retry rule refuses it: the deadline has passed


# -- idle mid-response ---------------------------------------------------------------------------------
def test_silence_mid_response_is_idle_s_after_the_last_frame_and_final() -> None:
    t = policy.frame_arrived(timers(), T0 + 30)
    assert wake(t, "idle", T0 + 30 + D.idle_s - EPS) == Wait()
    out = expired(t, "idle", T0 + 30 + D.idle_s)
    assert out.stalled and not out.error.retryable
    assert out.error.error.message == "provider p went silent mid-response"


def test_idle_ends_at_the_requests_deadline() -> None:
    t = policy.frame_arrived(timers(request_by=T0 + 35), T0 + 30)
    assert wake(t, "idle", T0 + 35 - EPS) == Wait()
    out = expired(t, "idle", T0 + 35)
    assert not out.stalled and out.error.error.message == "the request did not finish within its deadline"


# -- liveness probe ------------------------------------------------------------------------------------
def test_the_worker_is_probed_after_liveness_s_of_silence_once_it_named_its_control_subject() -> None:
    t = policy.frame_arrived(timers(), T0 + 1)
    assert policy.wake_at(t, "first_token", probing=True) == T0 + 1 + D.liveness_s
    assert policy.wake_at(t, "first_token", probing=False) == T0 + 1 + D.idle_s
    assert wake(t, "first_token", T0 + 1 + D.liveness_s - EPS, probing=True) == Wait()
    assert wake(t, "first_token", T0 + 1 + D.liveness_s, probing=True) == Probe(policy.LIVENESS_PROBE_TIMEOUT_S)
    assert wake(t, "first_token", T0 + 1 + D.liveness_s, probing=False) == Wait()


def test_after_a_probe_the_next_one_is_liveness_s_later() -> None:
    t = policy.probed(policy.frame_arrived(timers(), T0 + 1), T0 + 4)
    assert wake(t, "idle", T0 + 4 + D.liveness_s - EPS, probing=True) == Wait()
    assert isinstance(wake(t, "idle", T0 + 4 + D.liveness_s, probing=True), Probe)


def test_a_frame_pushes_the_probe_back() -> None:
    t = policy.frame_arrived(policy.frame_arrived(timers(), T0 + 1), T0 + 3)
    assert wake(t, "idle", T0 + 1 + D.liveness_s, probing=True) == Wait()
    assert isinstance(wake(t, "idle", T0 + 3 + D.liveness_s, probing=True), Probe)


def test_the_probe_waits_at_most_the_time_left_and_at_least_50_ms() -> None:
    t = policy.frame_arrived(timers(), T0)  # idle deadline T0 + 10, probe due from T0 + 3
    assert wake(t, "idle", T0 + 9.5, probing=True) == Probe(0.5)
    assert wake(t, "idle", T0 + 10 - 0.01, probing=True) == Probe(policy.MIN_PROBE_TIMEOUT_S)
    assert isinstance(wake(t, "idle", T0 + 10, probing=True), Expired)  # the deadline wins over a probe


def test_a_worker_that_forgot_the_attempt_ends_it_after_the_grace_unless_a_frame_comes() -> None:
    t = policy.forgotten(policy.frame_arrived(timers(), T0 + 1), T0 + 4)
    lost_by = T0 + 4 + policy.FORGOTTEN_GRACE_S
    assert policy.wake_at(t, "answer", probing=True) == lost_by
    assert wake(t, "answer", lost_by - EPS, probing=True) == Wait()  # no second probe in the grace
    assert policy.forgotten(t, lost_by - EPS).lost_by == lost_by  # asked again, the grace does not restart
    out = expired(t, "answer", lost_by, probing=True)
    assert not out.stalled and out.error.retryable and out.error.error.code == "frames_lost"
    assert not expired(t, "idle", lost_by).error.retryable  # content already reached the consumer
    # The last frames were only on their way: one arrives, and the attempt goes on as before.
    t = policy.frame_arrived(t, lost_by - EPS)
    assert wake(t, "answer", lost_by + 1, probing=True) == Wait()


def test_lost_frames_keep_their_provider_once_like_a_dead_worker() -> None:
    lost = policy.frames_lost_error("a1", "p", content=False)
    state, decision = policy.after_error(Fallback((), 3, 0), lost, content=False, now=T0, request_by=T0 + 9)
    assert decision == Retry() and state.excluded == () and state.troubled == {"p"}
    state, decision = policy.after_error(state, lost, content=False, now=T0, request_by=T0 + 9)
    assert decision == Retry() and state.excluded == ("p",)


def test_a_worker_gone_before_content_is_retryable_after_it_is_not() -> None:
    before = policy.worker_gone_error("a1", "p", content=False)
    after = policy.worker_gone_error("a1", "p", content=True)
    assert (before.status, before.error.code, before.retryable, before.provider, before.seq) == (
        502, WORKER_GONE, True, "p", -1)
    assert not after.retryable and "stopped mid-request" in after.error.message


# -- what an error means -------------------------------------------------------------------------------
def failed(status: int = 502, *, retryable: bool = True, provider: str | None = "bad", seq: int = 1,
           code: str | None = None) -> Error:
    return Error(attempt="a1", seq=seq, status=status, retryable=retryable, provider=provider,
                 error=ErrorBody(message="x", type="upstream_error", code=code))


def fresh(retries: int = 2) -> Fallback:
    return Fallback(excluded=(), retries_left=retries, context_fallback=0)


def decide(state: Fallback, final: Error, *, content: bool = False, now: float = T0) -> tuple[Fallback, object]:
    return policy.after_error(state, final, content=content, now=now, request_by=REQUEST_BY)


def test_a_retryable_error_before_content_retries_with_the_provider_excluded() -> None:
    final = failed()
    state, decision = decide(fresh(), final)
    assert decision == Retry()
    assert state.excluded == ("bad",) and state.retries_left == 1 and state.upstream is final


def test_no_retry_after_content_reached_the_consumer() -> None:
    final = failed()
    state, decision = decide(fresh(), final, content=True)
    assert decision == GiveUp(final) and state == fresh()


def test_a_non_retryable_error_is_final() -> None:
    final = failed(400, retryable=False)
    assert decide(fresh(), final)[1] == GiveUp(final)


def test_an_error_naming_no_provider_is_final() -> None:
    final = failed(503, provider=None, seq=0, code="no_router")
    assert decide(fresh(), final)[1] == GiveUp(final)


def test_the_retry_budget_both_sides() -> None:
    assert decide(fresh(retries=1), failed())[1] == Retry()
    final = failed()
    assert decide(fresh(retries=0), final)[1] == GiveUp(final)


def test_no_retry_once_the_requests_deadline_passed_both_sides() -> None:
    assert decide(fresh(), failed(), now=REQUEST_BY - EPS)[1] == Retry()
    final = failed()
    assert decide(fresh(), final, now=REQUEST_BY)[1] == GiveUp(final)


def test_context_length_exceeded_retries_for_a_larger_model_without_excluding() -> None:
    state, decision = decide(fresh(), failed(400, retryable=False, code=CONTEXT_LENGTH_EXCEEDED))
    assert decision == Retry() and state.context_fallback == 1 and state.excluded == ()
    state, decision = decide(state, failed(400, retryable=False, code=CONTEXT_LENGTH_EXCEEDED))
    assert decision == Retry() and state.context_fallback == 2 and state.retries_left == 0


def test_context_length_exceeded_from_the_router_is_final() -> None:
    final = failed(400, retryable=False, provider=None, seq=0, code=CONTEXT_LENGTH_EXCEEDED)
    assert decide(fresh(), final)[1] == GiveUp(final)


@pytest.mark.parametrize("code", [WORKER_GONE, WORKER_UNRESPONSIVE])
def test_a_worker_that_dies_keeps_its_provider_once_not_twice(code: str) -> None:
    state, decision = decide(fresh(), failed(provider="p", seq=-1, code=code))
    assert decision == Retry() and state.excluded == () and state.troubled == {"p"}
    state, decision = decide(state, failed(provider="p", seq=-1, code=code))
    assert decision == Retry() and state.excluded == ("p",)


@pytest.mark.parametrize("code", ["no_provider_available", CONTEXT_LENGTH_EXCEEDED])
def test_with_nothing_left_to_try_the_caller_gets_the_providers_error(code: str) -> None:
    provider_error = failed(429)
    state, _ = decide(fresh(), provider_error)
    router = failed(503, retryable=False, provider=None, seq=0, code=code)
    assert decide(state, router)[1] == GiveUp(provider_error)


def test_a_failure_of_the_retry_itself_is_not_replaced_by_the_earlier_error() -> None:
    state, _ = decide(fresh(), failed(500))
    timeout = policy.deadline_error("a2", "accepted", None, passed_request=False)
    assert decide(state, timeout)[1] == GiveUp(timeout)
    refused = failed(503, retryable=False, provider=None, seq=1, code="no_provider_available")  # not the router's
    assert decide(state, refused)[1] == GiveUp(refused)


def test_the_router_refusing_before_any_provider_answered_is_final() -> None:
    router = failed(503, retryable=False, provider=None, seq=0, code="no_provider_available")
    assert decide(fresh(), router)[1] == GiveUp(router)


def test_only_errors_the_client_made_up_cancel_the_worker() -> None:
    assert policy.cancels_worker(policy.deadline_error("a1", "idle", "p", passed_request=False))
    assert not policy.cancels_worker(failed(seq=3))
