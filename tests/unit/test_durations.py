"""The durations `aiub status` and the dashboard print (cli/durations.py)."""

from __future__ import annotations

import pytest

from cli.durations import age, duration


@pytest.mark.parametrize(("seconds", "text"), [
    (-3.0, "0s"), (0.4, "0s"), (59.4, "59s"), (60.0, "1m"), (3599.0, "60m"), (3600.0, "1.0h"),
    (86399.0, "24.0h"), (86400.0, "1.0d"), (3 * 86400.0, "3.0d")])
def test_age_keeps_the_number_small(seconds: float, text: str) -> None:
    assert age(seconds) == text


@pytest.mark.parametrize(("seconds", "text"), [(0.0123, "12 ms"), (9.9994, "9999 ms"), (10.0, "10.0 s"),
                                               (75.25, "75.2 s")])
def test_duration_in_milliseconds_below_ten_seconds(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_a_missing_duration_says_so_in_the_screens_own_mark() -> None:
    assert duration(None) == "–"
    assert duration(None, missing="-") == "-"
