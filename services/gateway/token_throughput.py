"""Tokens per second over a sliding window, in one-second buckets: the `throughput` gauge, not a limit.

Pure: the caller gives the time.
"""

from __future__ import annotations

from collections import deque


class TokenRate:
    def __init__(self, window_s: int = 10) -> None:
        self._window_s = window_s
        self._buckets: deque[tuple[int, int]] = deque()  # (second, tokens)

    def add(self, tokens: int, now: float) -> None:
        second = int(now)
        if self._buckets and self._buckets[-1][0] == second:
            self._buckets[-1] = (second, self._buckets[-1][1] + tokens)
        else:
            self._buckets.append((second, tokens))
        self._expire(second)

    def per_second(self, now: float) -> float:
        self._expire(int(now))
        return sum(tokens for _, tokens in self._buckets) / self._window_s

    def _expire(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - self._window_s:
            self._buckets.popleft()
