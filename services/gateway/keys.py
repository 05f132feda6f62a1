"""Virtual API keys, pure: their format, how they are stored, and what a presented key is worth.

A key is `sk-aiub-<id>_<secret>`: the id (12 hex) finds the record, the secret (64 hex, 256
bits) proves possession. Only the SHA-256 of the whole key is stored; with that much entropy a
slow or peppered hash buys nothing, and the store never holds anything a client could present.
Hashes are compared with `hmac.compare_digest`.

The id is safe to log and to name in `aiub keys list`; the key itself is shown once, at creation.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import re
import secrets
from datetime import UTC, datetime
from typing import Literal

import msgspec

PREFIX = "sk-aiub-"
_KEY = re.compile(r"^sk-aiub-([0-9a-f]{12})_[0-9a-f]{64}$")
_LATEST_EXPIRY = datetime(9999, 12, 31, tzinfo=UTC).timestamp()
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    hash: str  # hex SHA-256 of the whole key
    name: str = ""
    models: tuple[str, ...] = ()  # public model names or globs; empty: every model
    rpm: int | None = None
    tpm: int | None = None
    created_at: float = 0.0
    expires_at: float | None = None
    revoked_at: float | None = None
    # Budgets per UTC day / calendar month (budgets.py); None: no budget.
    budget_tokens_day: int | None = None
    budget_tokens_month: int | None = None
    budget_cost_day: float | None = None
    budget_cost_month: float | None = None

    @property
    def has_budget(self) -> bool:
        return not (self.budget_tokens_day is None and self.budget_tokens_month is None
                    and self.budget_cost_day is None and self.budget_cost_month is None)

    def allows(self, model: str) -> bool:
        return not self.models or any(fnmatch.fnmatchcase(model, pattern) for pattern in self.models)


BUDGET_FIELDS = ("budget_tokens_day", "budget_tokens_month", "budget_cost_day", "budget_cost_month")

encode_record = msgspec.json.Encoder().encode
decode_record = msgspec.json.Decoder(KeyRecord).decode


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()


def new_key(now: float, *, name: str = "", models: tuple[str, ...] = (), rpm: int | None = None,
            tpm: int | None = None, expires_at: float | None = None,
            budgets: dict[str, int | float | None] | None = None) -> tuple[str, KeyRecord]:
    """A fresh key and its record; the key is returned once and never stored. `budgets`: the
    record's budget_* fields by name (budget_tokens_day=...)."""
    key_id = secrets.token_hex(6)
    key = f"{PREFIX}{key_id}_{secrets.token_hex(32)}"
    record = KeyRecord(id=key_id, hash=hash_key(key), name=name, models=models, rpm=rpm, tpm=tpm,
                       created_at=now, expires_at=expires_at)
    return key, msgspec.structs.replace(record, **(budgets or {}))


def key_id(token: str) -> str | None:
    """The record id named by a presented token, or None when it is not shaped like our keys."""
    match = _KEY.match(token)
    return match.group(1) if match else None


def valid_id(text: str) -> bool:
    """Shaped like a key id (12 hex): anything else names no record."""
    return re.fullmatch(r"[0-9a-f]{12}", text) is not None


Verdict = Literal["ok", "invalid", "revoked", "expired"]


def verify(record: KeyRecord | None, token: str, now: float) -> Verdict:
    if record is None:
        return "invalid"
    if not hmac.compare_digest(record.hash.encode(), hash_key(token).encode()):
        return "invalid"
    if record.revoked_at is not None:
        return "revoked"
    if record.expires_at is not None and now >= record.expires_at:
        return "expired"
    return "ok"


def parse_expiry(text: str, now: float) -> float | None:
    """`30d`, `12h`, `90m`, `3600s`, `2w`, an ISO date or datetime (UTC unless it says), or `never`."""
    value = text.strip().lower()
    if value in ("never", "none", ""):
        return None
    duration = _DURATION.match(value)
    if duration:
        at = now + float(duration.group(1)) * _UNITS[duration.group(2)]
    else:
        try:
            moment = datetime.fromisoformat(text.strip())
        except ValueError:
            raise ValueError(f"not a duration (30d, 12h, 90m) or an ISO date: {text!r}") from None
        at = (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).timestamp()
    if at <= now:  # a key born expired is a typo, not a wish
        raise ValueError(f"{text!r} has already passed" if not duration else f"{text!r} is no time at all")
    if at > _LATEST_EXPIRY:  # every screen that prints the date would fail on it
        raise ValueError(f"{text!r} is past the year 9999: use 'never'")
    return at


def status(record: KeyRecord, now: float) -> str:
    if record.revoked_at is not None:
        return "revoked"
    if record.expires_at is not None and now >= record.expires_at:
        return "expired"
    return "active"
