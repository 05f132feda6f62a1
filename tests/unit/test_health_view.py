"""How a HealthView reads the bucket's entries (no broker: entries are applied directly)."""

from __future__ import annotations

import time

from shared import subjects
from shared.health_view import HealthView, Heartbeat
from shared.messages import ProviderState, encode


def test_states_heartbeat_and_private_keys() -> None:
    view = HealthView(stale_after_s=5)
    assert view.stale  # never heard from the health service
    view._apply("ollama", encode(ProviderState(provider="ollama", state="unavailable", seq=2)), "PUT")
    view._apply(subjects.HEALTH_LEADER_KEY, b'{"holder":"x","at":1,"lease_s":3}', "PUT")
    view._apply(subjects.HEALTH_HEARTBEAT_KEY, encode(Heartbeat(leader="h", at=time.time())), "PUT")
    assert set(view.states) == {"ollama"} and not view.states["ollama"].routable
    assert not view.stale and view.changed.is_set()


def test_an_old_heartbeat_means_stale_but_the_states_stay() -> None:
    view = HealthView(stale_after_s=5)
    view._apply("ollama", encode(ProviderState(provider="ollama", state="unavailable", seq=2)), "PUT")
    view._apply(subjects.HEALTH_HEARTBEAT_KEY, encode(Heartbeat(leader="h", at=time.time() - 5.5)), "PUT")
    assert view.stale and view.states["ollama"].state == "unavailable"


def test_an_older_sequence_never_replaces_a_newer_one() -> None:
    view = HealthView()
    view._apply("p", encode(ProviderState(provider="p", state="cooldown", seq=5)), "PUT")
    view._apply("p", encode(ProviderState(provider="p", state="unavailable", seq=4)), "PUT")
    assert view.states["p"].state == "cooldown"
    view._apply("p", encode(ProviderState(provider="p", state="active", seq=5, probe_latency_s=0.01)), "PUT")
    assert view.states["p"].probe_latency_s == 0.01  # same sequence: a probe refresh


def test_a_deleted_key_forgets_the_provider() -> None:
    view = HealthView()
    view._apply("p", encode(ProviderState(provider="p", state="unavailable", seq=1)), "PUT")
    view._apply("p", b"", "DEL")
    assert "p" not in view.states
