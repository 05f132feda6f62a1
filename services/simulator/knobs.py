"""Simulator knobs and the deterministic text they make the fake model say.

Pure: no I/O, no asyncio.  A `Knobs` value is set per instance (CLI, `POST /_sim/knobs`) and
overridden per request by the JSON body field ``"simulator": {...}`` and the ``x-simulator``
header (same JSON object).  Every override passes through `merge`, which refuses unknown keys
and out-of-range values so that a typo in a test fails loudly instead of being ignored.

Token text is ``"tok{i} "`` for token i (so tests can assert exact content); with
``echo`` the reply is the last user message, split after each run of whitespace.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

# Bounds keep a hostile or mistyped override from exhausting memory or hanging a test for hours.
MAX_TOKENS = 1_000_000
MAX_DELAY_MS = 3_600_000.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Knobs:
    tokens: int = 16
    ttft_ms: float = 0.0
    itl_ms: float = 0.0
    error_rate: float = 0.0
    error_status: int = 500
    retry_after: float | None = None  # Retry-After header, sent only with 429 and 503
    hang: bool = False  # accept the request, never answer, hold the connection
    drop_after: int | None = None  # close the connection after N content tokens (0 for JSON)
    echo: bool = False  # reply with the last user message instead of "tok{i} " filler
    tool_call: bool = False  # when the request offers tools, call one (see tools.py) instead of answering
    reasoning: bool = False  # openai flavor: reasoning_content chunks (as vLLM's reasoning parsers) before the answer

    @property
    def delayed(self) -> bool:
        return self.ttft_ms > 0 or self.itl_ms > 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _int(key: str, value: object, lo: int, hi: int) -> int:
    # bool is an int subclass; {"tokens": true} is a mistake, not 1.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"simulator knob {key!r} must be an integer, got {value!r}")
    if not lo <= value <= hi:
        raise ValueError(f"simulator knob {key!r} must be in [{lo}, {hi}], got {value}")
    return value


def _float(key: str, value: object, lo: float, hi: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"simulator knob {key!r} must be a number, got {value!r}")
    f = float(value)
    if not lo <= f <= hi:  # also rejects NaN
        raise ValueError(f"simulator knob {key!r} must be in [{lo}, {hi}], got {value}")
    return f


def _bool(key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"simulator knob {key!r} must be true or false, got {value!r}")
    return value


_CHECKS: dict[str, Any] = {
    "tokens": lambda k, v: _int(k, v, 0, MAX_TOKENS),
    "ttft_ms": lambda k, v: _float(k, v, 0.0, MAX_DELAY_MS),
    "itl_ms": lambda k, v: _float(k, v, 0.0, MAX_DELAY_MS),
    "error_rate": lambda k, v: _float(k, v, 0.0, 1.0),
    "error_status": lambda k, v: _int(k, v, 400, 599),
    "retry_after": lambda k, v: None if v is None else _float(k, v, 0.0, MAX_DELAY_MS),
    "hang": _bool,
    "echo": _bool,
    "tool_call": _bool,
    "reasoning": _bool,
    "drop_after": lambda k, v: None if v is None else _int(k, v, 0, MAX_TOKENS),
}
KNOB_NAMES = tuple(f.name for f in dataclasses.fields(Knobs))
assert set(_CHECKS) == set(KNOB_NAMES), "every knob needs a validator"


def merge(base: Knobs, overrides: Mapping[str, object]) -> Knobs:
    """Return `base` with `overrides` applied; ValueError names the first bad key."""
    if not isinstance(overrides, Mapping):
        raise ValueError(f"simulator knobs must be a JSON object, got {type(overrides).__name__}")
    if not overrides:
        return base
    changes: dict[str, Any] = {}
    for key, value in overrides.items():
        check = _CHECKS.get(key)
        if check is None:
            raise ValueError(
                f"unknown simulator knob {key!r}; known knobs: {', '.join(KNOB_NAMES)}"
            )
        changes[key] = check(key, value)
    return dataclasses.replace(base, **changes)


def parse_overrides(raw: bytes | str) -> dict[str, object]:
    """Decode the ``x-simulator`` header value (a JSON object)."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"x-simulator header is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("x-simulator header must be a JSON object")
    return value


_WORDS = re.compile(r"\s*\S+\s*")


def count_tokens(text: str) -> int:
    """Stand-in tokenizer: one token per whitespace-separated word, at least one."""
    return max(1, len(text.split()))


class Script:
    """The reply the fake model will produce: `n` pieces and why it stopped.

    Filler pieces are computed on demand so a 100k-token stream costs nothing up front.
    """

    __slots__ = ("_words", "finish_reason", "n")

    def __init__(self, n: int, finish_reason: str, words: list[str] | None) -> None:
        self.n = n
        self.finish_reason = finish_reason  # "stop" | "length"
        self._words = words

    def piece(self, i: int) -> str:
        return self._words[i] if self._words is not None else f"tok{i} "

    def text(self) -> str:
        if self._words is not None:
            return "".join(self._words[: self.n])
        return "".join([f"tok{i} " for i in range(self.n)])


def script(knobs: Knobs, cap: int | None, echo_source: str = "") -> Script:
    """Decide the reply; `cap` is the request's max_tokens / num_predict (None = no cap).

    finish_reason is "length" exactly when the cap cut the natural reply short, as a real
    engine reports when max_tokens is reached before end-of-sequence.
    """
    words = _WORDS.findall(echo_source) if knobs.echo else None
    natural = len(words) if words is not None else knobs.tokens
    if cap is not None and cap < natural:
        return Script(cap, "length", words)
    return Script(natural, "stop", words)
