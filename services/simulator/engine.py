"""A simulated inference engine: prefix cache, sequence cap, waiting queue, stalls. Pure.

What a real engine (vLLM, llama.cpp) does that matters to a router, reduced to arithmetic:

- **Prefix cache.** A prompt is a sequence of parts (the system prompt, then each message);
  part i is cached under a hash chained over parts 0..i, as vLLM chains its block hashes, so a
  part counts as cached only when everything before it is too. The cache is an LRU bounded in
  tokens (`cache_tokens`); a request's parts are inserted (or refreshed) when it starts.
- **Time to first token** = `base_ttft_ms` + `prefill_ms_per_token` x the prompt tokens not
  found in the cache (+ a stall). So a cached prefix is measurably faster, by design.
- **Sequence cap.** At most `max_seqs` requests run; the rest wait in arrival order. A
  request's prefix is looked up when it *starts*, not when it arrives: what waited may find
  the cache warmed by the request it waited behind.
- **Stalls.** With probability `stall_rate` a starting request stalls `stall_ms` more before
  its first token; `stall(until)` stalls every request started before `until` (a hiccup on
  demand). The draw comes from the injected `rng`; time is passed in (`now`, seconds).
- **Counters** as vLLM reports them: `prefix_queries` / `prefix_hits` in prompt tokens.
  KV use is the running requests' prompt and completion tokens over `cache_tokens`.

No I/O and no clock: `services/simulator/engine_gate.py` is the asyncio shell that makes
requests wait for `start` and calls `finish`.
"""

from __future__ import annotations

import hashlib
import random
from collections import OrderedDict, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

LoadFormat = Literal["vllm", "llamacpp", "ollama"]
_ASSISTANT = "assistant: "


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings:
    max_seqs: int = 8
    base_ttft_ms: float = 20.0
    prefill_ms_per_token: float = 0.5
    cache_tokens: int = 200_000  # KV capacity, and the prefix cache's bound
    stall_rate: float = 0.0
    stall_ms: float = 0.0
    load_format: LoadFormat = "vllm"  # which engine's load endpoints the simulator serves

    def __post_init__(self) -> None:
        if self.max_seqs < 1 or self.cache_tokens < 1:
            raise ValueError("max_seqs and cache_tokens must be at least 1")
        if min(self.base_ttft_ms, self.prefill_ms_per_token, self.stall_ms) < 0:
            raise ValueError("engine delays must not be negative")
        if not 0.0 <= self.stall_rate <= 1.0:
            raise ValueError("stall_rate must be in [0, 1]")


@dataclass(frozen=True, slots=True)
class Started:
    """A request begins prefill now; its first token is `ttft_s` away."""

    request: str
    ttft_s: float
    cached_tokens: int
    prompt_tokens: int


@dataclass(frozen=True, slots=True)
class EngineLoad:
    running: int
    waiting: int
    kv_usage: float  # 0..1
    prefix_queries: int  # prompt tokens looked up, since start
    prefix_hits: int  # of which found in the cache
    max_seqs: int
    cache_tokens: int


@dataclass(slots=True)
class _Request:
    parts: tuple[tuple[str, int], ...]  # (chained hash, tokens) per prompt part
    completion_tokens: int
    output: tuple[tuple[str, int], ...] = ()  # the reply's entry, cached once the request starts

    @property
    def prompt_tokens(self) -> int:
        return sum(t for _, t in self.parts)


def count_tokens(text: str) -> int:
    """The simulator's tokenizer: one token per whitespace-separated word (knobs.count_tokens)."""
    return max(1, len(text.split()))


def chain(parts: Sequence[str], output_tokens: int = 0) -> tuple[tuple[str, int], ...]:
    """Each part's hash chained over the parts before it, with its token count; with
    `output_tokens`, one more entry for the reply the engine will generate.

    An assistant part is hashed by its length, not its text: the simulator's replies are a
    function of their length, so the reply an engine generated (and cached, as engines cache
    generated tokens too) is what the next turn resends as that assistant message."""
    out: list[tuple[str, int]] = []
    running = hashlib.blake2b(digest_size=16)
    for part in parts:
        tokens = count_tokens(part)
        running.update(f"{_ASSISTANT}{tokens}".encode() if part.startswith(_ASSISTANT) else part.encode())
        running.update(b"\x00")
        out.append((running.copy().hexdigest(), tokens))
    if output_tokens > 0:
        running.update(f"{_ASSISTANT}{output_tokens + 1}".encode() + b"\x00")  # +1: the "assistant:" word
        out.append((running.copy().hexdigest(), output_tokens + 1))
    return tuple(out)


def content_text(content: object) -> str:
    """Text of a message content: a string, or the text parts of a content array."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return ""


def prompt_parts(body: Mapping[str, Any]) -> list[str]:
    """The prompt of any dialect's body as parts: `system` (Anthropic, Ollama generate), then each
    message (`role: text`), or `prompt`. Empty for bodies with no prompt (embeddings)."""
    parts: list[str] = []
    system = content_text(body.get("system"))
    if system:
        parts.append(f"system: {system}")
    messages = body.get("messages")
    if isinstance(messages, list):
        parts.extend(f"{m.get('role')}: {content_text(m.get('content'))}" for m in messages if isinstance(m, dict))
    prompt = body.get("prompt")
    if isinstance(prompt, str) and prompt:
        parts.append(prompt)
    return parts


@dataclass
class Engine:
    settings: EngineSettings
    rng: random.Random = field(default_factory=random.Random)
    _cache: OrderedDict[str, int] = field(default_factory=OrderedDict)  # hash -> tokens, LRU first
    _cached_tokens: int = 0
    _running: dict[str, _Request] = field(default_factory=dict)
    _waiting: deque[tuple[str, _Request]] = field(default_factory=deque)
    _stall_until: float = 0.0
    queries: int = 0
    hits: int = 0

    def arrive(self, request: str, parts: Sequence[str], completion_tokens: int, now: float) -> Started | None:
        """A request arrives: it starts at once when a sequence is free, else it waits (None)."""
        chained = chain(parts, max(0, completion_tokens))
        cut = len(parts)
        entry = _Request(chained[:cut], max(0, completion_tokens), chained[cut:])
        if len(self._running) < self.settings.max_seqs and not self._waiting:
            return self._start(request, entry, now)
        self._waiting.append((request, entry))
        return None

    def finish(self, request: str, now: float) -> list[Started]:
        """A request ended (completed, or its client left, waiting or not): who starts now."""
        if self._running.pop(request, None) is None:
            self._waiting = deque((r, e) for r, e in self._waiting if r != request)
        started = []
        while self._waiting and len(self._running) < self.settings.max_seqs:
            name, entry = self._waiting.popleft()
            started.append(self._start(name, entry, now))
        return started

    def stall(self, until: float) -> None:
        """Every request that starts before `until` (the engine's clock) stalls until then."""
        self._stall_until = max(self._stall_until, until)

    def load(self) -> EngineLoad:
        used = sum(e.prompt_tokens + e.completion_tokens for e in self._running.values())
        return EngineLoad(running=len(self._running), waiting=len(self._waiting),
                          kv_usage=min(1.0, used / self.settings.cache_tokens), prefix_queries=self.queries,
                          prefix_hits=self.hits, max_seqs=self.settings.max_seqs,
                          cache_tokens=self.settings.cache_tokens)

    def _start(self, request: str, entry: _Request, now: float) -> Started:
        cached = self._lookup(entry.parts)
        total = entry.prompt_tokens
        self.queries += total
        self.hits += cached
        self._insert(entry.parts + entry.output)
        self._running[request] = entry
        s = self.settings
        ttft_ms = s.base_ttft_ms + s.prefill_ms_per_token * (total - cached)
        if s.stall_rate > 0 and self.rng.random() < s.stall_rate:
            ttft_ms += s.stall_ms
        ttft_s = ttft_ms / 1000 + max(0.0, self._stall_until - now)
        return Started(request, ttft_s, cached, total)

    def _lookup(self, parts: Sequence[tuple[str, int]]) -> int:
        cached = 0
        for key, tokens in parts:
            if key not in self._cache:
                break
            cached += tokens
        return cached

    def _insert(self, parts: Sequence[tuple[str, int]]) -> None:
        # Last part first, so a chain's head is its most recently used entry: eviction takes
        # tails before heads, and a cached part never lacks the parts before it for long.
        for key, tokens in reversed(parts):
            if key in self._cache:
                self._cache.move_to_end(key)
                continue
            self._cache[key] = tokens
            self._cached_tokens += tokens
        while self._cached_tokens > self.settings.cache_tokens and self._cache:
            _, tokens = self._cache.popitem(last=False)
            self._cached_tokens -= tokens
