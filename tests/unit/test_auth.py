from pathlib import Path

import msgspec
import pytest

from services.gateway import keys
from services.gateway.auth import (
    ANONYMOUS,
    MASTER,
    Authenticator,
    StartupRefused,
    auth_mode,
    bearer_token,
    is_loopback,
)
from services.gateway.key_store import FileKeyStore, KeyStoreUnavailable
from shared.errors import AiubError, Forbidden, Unauthorized

NOW = 1_700_000_000.0
MASTER_KEY = "m" * 32


@pytest.mark.parametrize(("host", "loopback"), [("127.0.0.1", True), ("::1", True), ("localhost", True),
                                                ("127.0.0.2", True), ("0.0.0.0", False), ("::", False),
                                                ("10.0.0.5", False), ("example.org", False)])
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_auth_mode_rules() -> None:
    assert auth_mode("127.0.0.1", None, False, 16) == "off"
    assert auth_mode("127.0.0.1", MASTER_KEY, False, 16) == "required"
    assert auth_mode("0.0.0.0", MASTER_KEY, False, 16) == "required"
    assert auth_mode("0.0.0.0", None, True, 16) == "off_insecure"
    with pytest.raises(StartupRefused, match="--insecure-no-auth"):
        auth_mode("0.0.0.0", None, False, 16)
    for weak in ("short", " " + MASTER_KEY, MASTER_KEY + "\n"):
        with pytest.raises(StartupRefused) as caught:
            auth_mode("127.0.0.1", weak, False, 16)
        assert weak.strip() not in str(caught.value)


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic abc", "bearer", "Token abc",
                                    "Bearer " + "k" * 8192, "Bearer a\r\nX-Injected: 1", "Bearer a\nb",
                                    "Bearer a b", "Bearer caf\u00e9", "Bearer a\x00b"])
def test_malformed_headers_are_401_and_never_echo_the_key(header: str | None) -> None:
    with pytest.raises(Unauthorized) as caught:
        bearer_token(header)
    assert caught.value.status == 401
    if header and len(header) > 7:
        assert header[7:] not in caught.value.message


def test_bearer_scheme_is_case_insensitive() -> None:
    assert bearer_token("bearer abc") == "abc"
    assert bearer_token("BEARER  abc ") == "abc"


def test_new_keys_are_recognised_and_hashed() -> None:
    key, record = keys.new_key(NOW, models=("m",), rpm=5)
    assert key.startswith("sk-aiub-") and len(key) == 85
    assert keys.key_id(key) == record.id
    assert key not in msgspec.json.encode(record).decode()
    assert keys.verify(record, key, NOW) == "ok"
    assert keys.verify(record, key[:-1] + ("0" if key[-1] != "0" else "1"), NOW) == "invalid"
    assert keys.verify(None, key, NOW) == "invalid"
    assert keys.key_id("sk-aiub-nothex") is None


def test_expiry_on_both_sides_and_revocation() -> None:
    key, record = keys.new_key(NOW, expires_at=NOW + 60)
    assert keys.verify(record, key, NOW + 59.999) == "ok"
    assert keys.verify(record, key, NOW + 60) == "expired"
    revoked = msgspec.structs.replace(record, revoked_at=NOW)
    assert keys.verify(revoked, key, NOW) == "revoked"


@pytest.mark.parametrize(("text", "expected"), [("30d", NOW + 30 * 86400), ("12h", NOW + 43200), ("90m", NOW + 5400),
                                                ("1.5s", NOW + 1.5), ("never", None),
                                                ("2030-01-01", 1893456000.0),
                                                ("2030-01-01T01:00:00+01:00", 1893456000.0)])
def test_parse_expiry(text: str, expected: float | None) -> None:
    assert keys.parse_expiry(text, NOW) == expected


@pytest.mark.parametrize("text", ["soon", "2020-01-01", "0d", "0s",
                                  # a date no screen can print: `aiub keys list` failed on every key after one
                                  "99999999d", "9999-12-31T23:59:59"])
def test_parse_expiry_refuses_nonsense_the_past_and_what_no_date_can_hold(text: str) -> None:
    with pytest.raises(ValueError):
        keys.parse_expiry(text, NOW)


def test_model_globs() -> None:
    record = keys.KeyRecord(id="a", hash="", models=("llama*", "qwen-coder"))
    assert record.allows("llama3.1:8b") and record.allows("qwen-coder")
    assert not record.allows("gpt-4o")
    assert keys.KeyRecord(id="a", hash="").allows("anything")


async def test_authenticator_end_to_end_on_a_file_store(tmp_path: Path) -> None:
    store = FileKeyStore(tmp_path / "keys.json")
    key, record = keys.new_key(NOW, models=("m",))
    await store.put(record)
    clock = [NOW]
    auth = Authenticator("required", MASTER_KEY, store, clock=lambda: clock[0])
    assert await auth.authenticate(f"Bearer {MASTER_KEY}") == MASTER
    principal = await auth.authenticate(f"Bearer {key}")
    assert principal.tenant == f"key:{record.id}" and principal.key_id == record.id
    principal.check_model("m")
    with pytest.raises(Forbidden) as refused:
        principal.check_model("other")
    assert refused.value.code == "model_not_allowed" and refused.value.body().type == "permission_error"
    for wrong in (MASTER_KEY[:-1], key[:-2] + "00", "sk-aiub-000000000000_" + "0" * 64):
        with pytest.raises(Unauthorized):
            await auth.authenticate(f"Bearer {wrong}")
    # Revoked through the file, as `aiub keys revoke` does: seen on the next request.
    await FileKeyStore(tmp_path / "keys.json").put(msgspec.structs.replace(record, revoked_at=NOW))
    with pytest.raises(Unauthorized, match="revoked"):
        await auth.authenticate(f"Bearer {key}")
    assert (tmp_path / "keys.json").stat().st_mode & 0o777 == 0o600


async def test_auth_off_is_anonymous_and_required_never_is() -> None:
    assert await Authenticator("off", None, None).authenticate(None) == ANONYMOUS
    with pytest.raises(Unauthorized):
        await Authenticator("required", MASTER_KEY, None).authenticate(None)


async def test_a_broken_store_fails_closed(tmp_path: Path) -> None:
    path = tmp_path / "keys.json"
    path.write_text("{not json")
    key, _ = keys.new_key(NOW)
    auth = Authenticator("required", MASTER_KEY, FileKeyStore(path))
    with pytest.raises(AiubError) as caught:
        await auth.authenticate(f"Bearer {key}")
    assert caught.value.status == 500 and caught.value.code == "auth_unavailable"
    assert key not in caught.value.message
    with pytest.raises(KeyStoreUnavailable):
        await FileKeyStore(path).all()
