import pytest

from shared.scope import Scope, ScopeRejected, issue, verify

SECRET = b"s" * 32


def test_a_genuine_token_verifies_and_allows_its_models() -> None:
    token = issue(Scope(tenant="key:abc", models=("llama3.1:*",), expires_at=200.0), SECRET)
    assert verify(token, SECRET, "llama3.1:8b", now=199.9).tenant == "key:abc"


@pytest.mark.parametrize(("token", "status"), [
    (None, 401), ("", 401), ("no-dot", 401), ("a.b", 401), ("!!.??", 401),
])
def test_missing_or_malformed_tokens_are_401(token: str | None, status: int) -> None:
    with pytest.raises(ScopeRejected) as caught:
        verify(token, SECRET, "m", now=0.0)
    assert caught.value.status == status


def test_another_secret_or_a_changed_payload_is_401() -> None:
    token = issue(Scope(tenant="t", models=("a",)), SECRET)
    with pytest.raises(ScopeRejected, match="not signed"):
        verify(token, b"other-secret", "a", now=0.0)
    forged = issue(Scope(tenant="t", models=()), b"attacker") .split(".")[0] + "." + token.split(".")[1]
    with pytest.raises(ScopeRejected, match="not signed"):
        verify(forged, SECRET, "b", now=0.0)


def test_expiry_on_both_sides_of_the_boundary() -> None:
    token = issue(Scope(tenant="t", expires_at=100.0), SECRET)
    assert verify(token, SECRET, "m", now=99.999).tenant == "t"
    with pytest.raises(ScopeRejected, match="expired"):
        verify(token, SECRET, "m", now=100.0)


def test_a_model_outside_the_scope_is_403() -> None:
    token = issue(Scope(tenant="t", models=("qwen*",)), SECRET)
    with pytest.raises(ScopeRejected) as caught:
        verify(token, SECRET, "llama3.1:8b", now=0.0)
    assert caught.value.status == 403
