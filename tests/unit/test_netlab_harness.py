"""The lab description (shared/lab.py): URL lists, node configs, refusals."""

from __future__ import annotations

import pytest

from shared.lab import LabError, make_lab, node_config, parse_hub, spread, urls

AUTH = 'authorization { users: [ { user: gateway, password: $NATS_GATEWAY_PASSWORD } ] }'
PASSWORDS = {"gateway": "g-pw", "route": "r-pw"}


def three() -> list:  # type: ignore[type-arg]
    return [parse_hub(f"hub{i}=10.0.0.{i}") for i in (1, 2, 3)]


def test_a_hub_is_named_by_its_address_when_not_named() -> None:
    assert parse_hub("hub2.lab.example").name == "hub2"
    assert parse_hub("a=10.1.1.1").address == "10.1.1.1"


@pytest.mark.parametrize("bad", ["Bad_Name=1.2.3.4", "a=1.2.3.4:99", "a=", "a=x y"])
def test_a_malformed_hub_is_refused_with_what_was_given(bad: str) -> None:
    with pytest.raises(LabError, match="--hub"):
        parse_hub(bad)


def test_two_nodes_are_refused_one_and_three_are_not() -> None:
    with pytest.raises(LabError, match="quorum"):
        make_lab(three()[:2])
    assert make_lab(three()[:1]).jetstream_replicas == 1
    assert make_lab(three()).jetstream_replicas == 3


def test_urls_name_every_node_the_preferred_first_with_the_users_password() -> None:
    lab = make_lab(three())
    assert urls(lab, "worker", "pw", preferred="hub2").split(",") == [
        "tls://worker:pw@10.0.0.2:4222", "tls://worker:pw@10.0.0.1:4222", "tls://worker:pw@10.0.0.3:4222"]
    assert urls(make_lab(three(), tls=False), "router", "x").startswith("nats://router:x@10.0.0.1:4222,")
    assert [spread(lab, i) for i in range(4)] == ["hub1", "hub2", "hub3", "hub1"]


def test_a_node_routes_to_the_others_over_tls_with_the_route_user() -> None:
    conf = node_config(make_lab(three()), "hub1", PASSWORDS, AUTH, cert="c.pem", key="k.pem", ca="ca.pem")
    assert 'routes: ["tls://route:r-pw@10.0.0.2:6222", "tls://route:r-pw@10.0.0.3:6222"]' in conf
    assert "no_advertise: true" in conf and 'server_name: "hub1"' in conf
    assert 'password: "g-pw"' in conf and "$NATS_" not in conf


def test_a_single_node_has_no_cluster_block_and_tls_needs_its_files() -> None:
    assert "cluster" not in node_config(make_lab(three()[:1], tls=False), "hub1", PASSWORDS, AUTH)
    with pytest.raises(LabError, match="certificate"):
        node_config(make_lab(three()), "hub1", PASSWORDS, AUTH)


def test_a_user_without_a_password_or_an_unknown_node_is_refused() -> None:
    with pytest.raises(LabError, match="gateway"):
        node_config(make_lab(three()[:1], tls=False), "hub1", {"route": "r"}, AUTH)
    with pytest.raises(LabError, match="hub9"):
        node_config(make_lab(three()), "hub9", PASSWORDS, AUTH)
