"""Usage rows, pure: the tally between flushes, filters, grouping, day ranges; `aiub usage`'s table."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cli.usage import as_json, render_table
from services.gateway import usage
from services.gateway.usage import UsageRow


def at(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def test_the_tally_sums_per_day_key_model_provider_and_keeps_failed_flushes() -> None:
    tally = usage.Tally()
    tally.add(at("2025-03-31T23:59:59"), "k1", "m", "p", 10, 5, 0.01)
    tally.add(at("2025-03-31T23:59:59"), "k1", "m", "p", 1, 2, 0.0)
    tally.add(at("2025-04-01T00:00:00"), "k1", "m", "p", 1, 1, 0.0)
    rows = tally.take()
    assert len(tally) == 0
    assert [(r.day, r.requests, r.prompt_tokens, r.completion_tokens) for r in rows] == [
        ("2025-03-31", 2, 11, 7), ("2025-04-01", 1, 1, 1)]
    tally.add(at("2025-04-01T01:00:00"), "k1", "m", "p", 1, 1, 0.0)
    tally.put_back(rows)
    assert sorted((r.day, r.requests) for r in tally.take()) == [("2025-03-31", 2), ("2025-04-01", 2)]


def test_select_and_group() -> None:
    rows = [UsageRow(day="2025-03-31", key="a", model="m1", provider="p", requests=1, prompt_tokens=3),
            UsageRow(day="2025-04-01", key="a", model="m2", provider="p", requests=2, prompt_tokens=4),
            UsageRow(day="2025-04-01", key="b", model="m1", provider="q", requests=1, completion_tokens=9)]
    by_key = usage.group(rows, ("key",))
    assert [(r.key, r.day, r.model, r.requests, r.total_tokens) for r in by_key] == [
        ("a", "*", "*", 3, 7), ("b", "*", "*", 1, 9)]
    assert [r.key for r in usage.select(rows, model="m1", provider="q")] == ["b"]


def test_day_ranges_and_groups_are_checked() -> None:
    assert usage.days_between("2025-02-27", "2025-03-01") == ["2025-02-27", "2025-02-28", "2025-03-01"]
    assert usage.default_range(at("2025-03-31T10:00:00"), 2) == ("2025-03-30", "2025-03-31")
    with pytest.raises(ValueError, match="before it starts"):
        usage.days_between("2025-03-02", "2025-03-01")
    with pytest.raises(ValueError, match="at most"):
        usage.days_between("2020-01-01", "2025-03-01")
    with pytest.raises(ValueError, match="cannot group by 'team'"):
        usage.parse_groups("key,team")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        usage.parse_day("yesterday")


def test_the_table_and_json_of_aiub_usage() -> None:
    rows = [UsageRow(day="2025-03-31", key="abc", model="llama", provider="*", requests=2, prompt_tokens=10,
                     completion_tokens=5, cost=0.25)]
    table = render_table(rows, ("key", "model", "day")).splitlines()
    assert table[0].split() == ["day", "key", "model", "requests", "prompt", "completion", "total", "cost"]
    assert table[1].split() == ["2025-03-31", "abc", "llama", "2", "10", "5", "15", "0.2500"]
    assert "no usage" in render_table([], ("key",))
    out = as_json(rows, "2025-03-01", "2025-03-31", ("key", "model", "day"))
    assert out["data"][0]["total_tokens"] == 15 and out["group_by"] == ["key", "model", "day"]
