"""Usage accounting, pure: what one answered request adds, the per-gateway tally that collects it
between flushes, and the queries over stored rows (filters, grouping, day ranges).

A row counts one (UTC day, key, model, provider): requests, prompt and completion tokens (as the
backend reported them) and their cost at the provider's `cost_per_1k_tokens` for the model.
`key` is a virtual key's id, `master`, or `anonymous` (auth off). Only complete answers are
counted: a refusal, an error or a stream cut off before its last frame spent no reported tokens.
Cache hits reach no provider and are not counted here (the gateway's metrics count them).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Literal

import msgspec

Group = Literal["key", "model", "provider", "day"]
GROUPS: tuple[Group, ...] = ("key", "model", "provider", "day")
MAX_DAYS = 400  # the longest range one query reads


class UsageRow(msgspec.Struct, kw_only=True):
    day: str  # YYYY-MM-DD, UTC
    key: str
    model: str
    provider: str
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float = 0.0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: UsageRow) -> None:
        self.requests += other.requests
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost += other.cost


encode_row = msgspec.json.Encoder().encode
decode_row = msgspec.json.Decoder(UsageRow).decode

Ident = tuple[str, str, str, str]  # day, key, model, provider


def day_of(now: float) -> str:
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


def tenant_name(tenant: str) -> str:
    """The key column for a principal's tenant: `key:ab12` → `ab12`; `master`, `anonymous` as they are."""
    return tenant.removeprefix("key:")


class Tally:
    """This gateway's usage since its last flush; `add` is a dict update on the request path."""

    def __init__(self) -> None:
        self.rows: dict[Ident, UsageRow] = {}

    def add(self, now: float, key: str, model: str, provider: str, prompt_tokens: int, completion_tokens: int,
            cost: float) -> None:
        ident = (day_of(now), key, model, provider)
        row = self.rows.get(ident)
        if row is None:
            row = self.rows[ident] = UsageRow(day=ident[0], key=key, model=model, provider=provider)
        row.requests += 1
        row.prompt_tokens += prompt_tokens
        row.completion_tokens += completion_tokens
        row.cost += cost

    def take(self) -> list[UsageRow]:
        rows, self.rows = list(self.rows.values()), {}
        return rows

    def put_back(self, rows: Iterable[UsageRow]) -> None:
        """A flush that failed: its rows wait for the next one, merged with what came since."""
        for row in rows:
            ident = (row.day, row.key, row.model, row.provider)
            if ident in self.rows:
                self.rows[ident].add(row)
            else:
                self.rows[ident] = row

    def __len__(self) -> int:
        return len(self.rows)


def parse_day(text: str) -> str:
    """A day as YYYY-MM-DD; raises ValueError naming the input."""
    try:
        return date.fromisoformat(text.strip()).isoformat()
    except ValueError:
        raise ValueError(f"not a day (YYYY-MM-DD): {text!r}") from None


def days_between(since: str, until: str) -> list[str]:
    """Every day from `since` to `until`, both included; raises ValueError past MAX_DAYS or reversed."""
    first, last = date.fromisoformat(since), date.fromisoformat(until)
    if last < first:
        raise ValueError(f"the range ends ({until}) before it starts ({since})")
    count = (last - first).days + 1
    if count > MAX_DAYS:
        raise ValueError(f"the range spans {count} days; at most {MAX_DAYS}")
    return [(first + timedelta(days=i)).isoformat() for i in range(count)]


def default_range(now: float, days: int = 30) -> tuple[str, str]:
    """The last `days` days, today included."""
    today = datetime.fromtimestamp(now, UTC).date()
    return (today - timedelta(days=days - 1)).isoformat(), today.isoformat()


def select(rows: Iterable[UsageRow], *, key: str | None = None, model: str | None = None,
           provider: str | None = None) -> list[UsageRow]:
    return [r for r in rows if (key is None or r.key == key) and (model is None or r.model == model)
            and (provider is None or r.provider == provider)]


def group(rows: Iterable[UsageRow], by: Sequence[Group]) -> list[UsageRow]:
    """Rows summed over every column not in `by` (those read `*`), sorted by the grouped columns."""
    merged: dict[tuple[str, ...], UsageRow] = {}
    for row in rows:
        values = {g: getattr(row, g) if g in by else "*" for g in GROUPS}
        ident = tuple(values[g] for g in GROUPS)
        if ident not in merged:
            merged[ident] = UsageRow(day=values["day"], key=values["key"], model=values["model"],
                                     provider=values["provider"])
        merged[ident].add(row)
    return sorted(merged.values(), key=lambda r: (r.day, r.key, r.model, r.provider))


def parse_groups(text: str) -> tuple[Group, ...]:
    """`key,model,day` → its columns; raises ValueError naming an unknown one."""
    found: list[Group] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part not in GROUPS:
            raise ValueError(f"cannot group by {part!r}: choose from {', '.join(GROUPS)}")
        found.append(part)
    return tuple(found)
