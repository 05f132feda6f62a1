"""The response cache's pure half: which requests may be answered from it, under what key, for how long.

The key hashes the whole request body except fields that cannot change the answer, plus the
endpoint, the stream flag and the caller's tenant. Hashing everything is the safe direction: a
field we did not think of costs a miss, never a wrong answer served to someone. The tenant (the
virtual key's id) scopes entries, so one key's answers are never served to another.

Stored are complete, successful answers only: one `Result` body, or every chunk of a stream
that ended with `Done`. A streamed answer is replayed as the same `data:` events, so a hit is
indistinguishable in shape from a live stream.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from shared.config import CacheSettings
from shared.errors import BadRequest
from shared.sse import DONE_EVENT, event

# Fields that describe the caller or the transport, not the answer.
IGNORED_FIELDS = frozenset({"user", "metadata", "store"})
KEY_VERSION = b"aiub-cache-v1"

_encode_sorted = msgspec.json.Encoder(order="sorted").encode


def _normalise(value: Any) -> Any:
    """1.0 and 1 mean the same temperature; JSON encoders disagree on how to write them."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    return value


def cache_key(kind: str, body: dict[str, Any], tenant: str) -> str:
    """A stable hex digest of everything that shapes the answer, scoped to `tenant`. A body nested
    too deeply for `_normalise`'s recursion is a bad request (the walk is the price of the key)."""
    relevant = {k: v for k, v in body.items() if k not in IGNORED_FIELDS}
    relevant["stream"] = body.get("stream") is True  # absent and false are the same request
    try:
        canonical = _encode_sorted(_normalise(relevant))
    except RecursionError:
        raise BadRequest("the request body nests too deeply", param="body") from None
    digest = hashlib.sha256(KEY_VERSION)
    for part in (kind.encode(), tenant.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))  # length-prefixed: no two part lists hash alike
        digest.update(part)
    return digest.hexdigest()


@dataclass(frozen=True)
class CacheMode:
    read: bool
    write: bool

    @property
    def used(self) -> bool:
        return self.read or self.write


OFF = CacheMode(read=False, write=False)


def _directives(header: str | None) -> set[str]:
    if not header:
        return set()
    return {part.strip().split("=", 1)[0].lower() for part in header.split(",") if part.strip()}


def cache_mode(settings: CacheSettings, model: str, cache_control: str | None, cache_field: Any) -> CacheMode:
    """`Cache-Control: no-cache` or LiteLLM's `cache: {"no-cache": true}` skip the lookup (the fresh
    answer is still stored); `no-store` in either place also keeps it out of the cache."""
    if not settings.enabled or ttl_for(settings, model) <= 0:
        return OFF
    directives = _directives(cache_control)
    if isinstance(cache_field, dict):
        directives |= {name.lower() for name, value in cache_field.items() if value is True}
    write = "no-store" not in directives
    return CacheMode(read=write and "no-cache" not in directives, write=write)


def ttl_for(settings: CacheSettings, model: str) -> float:
    return settings.model_ttl_s.get(model, settings.ttl_s)


class CachedAnswer(msgspec.Struct, frozen=True, kw_only=True, array_like=True):
    """What a cache entry holds. `chunks` for a streamed answer, else `body`."""

    kind: Literal["result", "stream"]
    body: bytes = b""
    chunks: tuple[bytes, ...] = ()
    prompt_tokens: int = 0
    completion_tokens: int = 0
    provider: str = ""  # who answered first: a hit still says so in x-aiub-provider

    def size(self) -> int:
        return len(self.body) + sum(len(c) for c in self.chunks)


_encode_entry = msgspec.msgpack.Encoder().encode
_decode_entry = msgspec.msgpack.Decoder(CachedAnswer).decode


def encode_entry(answer: CachedAnswer) -> bytes:
    return _encode_entry(answer)


def decode_entry(raw: bytes) -> CachedAnswer | None:
    """None for an entry this version cannot read: a miss, not an error."""
    try:
        return _decode_entry(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


def replay(answer: CachedAnswer) -> Iterable[bytes]:
    """The SSE events of a stored stream, exactly as they were first sent."""
    for chunk in answer.chunks:
        yield event(chunk)
    yield DONE_EVENT
