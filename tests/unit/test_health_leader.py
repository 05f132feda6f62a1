"""Lease rules of the health replicas' leader election, on a fake monotonic clock."""

from __future__ import annotations

from services.health.leader import LeaseClock


def test_an_absent_lease_is_claimed_at_once() -> None:
    assert LeaseClock(3.0).observe(None, 0.0) == "claim"


def test_a_standby_takes_over_only_after_the_revision_stood_still_for_the_lease() -> None:
    clock = LeaseClock(3.0)
    assert clock.observe(7, 100.0) == "wait"  # first sight starts the count
    assert clock.observe(7, 102.999) == "wait"
    assert clock.observe(7, 103.0) == "take_over"


def test_a_renewal_restarts_the_count() -> None:
    clock = LeaseClock(3.0)
    clock.observe(7, 100.0)
    assert clock.observe(8, 102.5) == "wait"
    assert clock.observe(8, 105.499) == "wait"
    assert clock.observe(8, 105.5) == "take_over"


def test_a_replica_that_joins_late_waits_a_full_lease_even_for_an_old_revision() -> None:
    clock = LeaseClock(3.0)
    assert clock.observe(1, 1_000.0) == "wait"  # however old revision 1 is, this replica has just seen it
    assert clock.observe(1, 1_002.9) == "wait"


def test_a_deleted_lease_is_claimed_without_waiting() -> None:
    clock = LeaseClock(3.0)
    clock.observe(7, 100.0)
    assert clock.observe(None, 100.1) == "claim"


def test_a_leader_resigns_after_half_a_lease_without_a_renewal() -> None:
    clock = LeaseClock(3.0)
    clock.renewed(9, 50.0)
    assert not clock.must_resign(51.499)
    assert clock.must_resign(51.5)
    clock.renewed(10, 51.0)
    assert not clock.must_resign(52.0)
    assert clock.revision == 10


def test_a_leader_gives_up_before_any_standby_can_take_over() -> None:
    leader, standby = LeaseClock(3.0), LeaseClock(3.0)
    leader.renewed(5, 10.0)
    standby.observe(5, 10.2)  # the standby sees the renewal after it was made
    t = 10.2
    while standby.observe(5, t) == "wait":
        t += 0.01
    assert leader.must_resign(t)
