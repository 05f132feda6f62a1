"""Where usage rows are kept, durably: Redis when configured, else a JetStream KV bucket
(`aiub_usage`), and the recorder that moves each gateway's tally there.

The request path only adds to an in-memory tally (usage.Tally); a background task flushes it
every `flush_s` (1 s), and on shutdown. A gateway killed without draining loses at most its last
second of counts. A flush that fails keeps its rows for the next one.

Redis: one hash per day, `usage:<day>`, fields `<key>\\x1f<model>\\x1f<provider>\\x1f<r|p|c|$>`,
added to with HINCRBY / HINCRBYFLOAT (atomic, so replicas add up), kept 400 days.
JetStream: one entry per (day, key, model, provider), `<day>.<hex of key, model, provider>`,
its JSON row updated with compare-and-set (a replica that lost the race reads and adds again).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import msgspec
from nats.aio.client import Client
from nats.js.errors import (
    BucketNotFoundError,
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
)
from nats.js.errors import Error as JetStreamError
from nats.js.kv import KeyValue

from services.gateway.redis_link import RedisLink
from services.gateway.usage import MAX_DAYS, Tally, UsageRow, decode_row, encode_row
from shared import buckets, lifecycle, logs

log = logs.get("gateway.usage")

USAGE_BUCKET = "aiub_usage"
KEEP_S = MAX_DAYS * 86_400
_SEP = "\x1f"
_METRICS = {"r": "requests", "p": "prompt_tokens", "c": "completion_tokens", "$": "cost"}


class UsageStore(Protocol):
    @property
    def where(self) -> str: ...
    async def add(self, rows: Sequence[UsageRow]) -> None: ...
    async def read(self, days: Sequence[str]) -> list[UsageRow]: ...


class RedisUsageStore:
    def __init__(self, link: RedisLink) -> None:
        self._link = link

    @property
    def where(self) -> str:
        return f"Redis, under {self._link.key('usage', '<day>')}"

    async def add(self, rows: Sequence[UsageRow]) -> None:
        async def write(r: Any) -> None:
            async with self._link.client.pipeline(transaction=True) as pipe:
                for row in rows:
                    name = self._link.key("usage", row.day)
                    field = _SEP.join((row.key, row.model, row.provider))
                    pipe.hincrby(name, f"{field}{_SEP}r", row.requests)
                    pipe.hincrby(name, f"{field}{_SEP}p", row.prompt_tokens)
                    pipe.hincrby(name, f"{field}{_SEP}c", row.completion_tokens)
                    if row.cost:
                        pipe.hincrbyfloat(name, f"{field}{_SEP}$", row.cost)
                    pipe.expire(name, KEEP_S)
                await pipe.execute()

        await self._link.run(write, skip_when_down=False)

    async def read(self, days: Sequence[str]) -> list[UsageRow]:
        async def fetch(r: Any) -> list[Any]:
            async with self._link.client.pipeline(transaction=False) as pipe:
                for day in days:
                    pipe.hgetall(self._link.key("usage", day))
                return list(await pipe.execute())

        rows: list[UsageRow] = []
        for day, fields in zip(days, await self._link.run(fetch, skip_when_down=False), strict=True):
            found: dict[tuple[str, str, str], UsageRow] = {}
            for raw_field, raw_value in fields.items():
                text = raw_field.decode() if isinstance(raw_field, bytes) else raw_field
                key, model, provider, metric = text.split(_SEP)
                row = found.setdefault((key, model, provider),
                                       UsageRow(day=day, key=key, model=model, provider=provider))
                value = raw_value.decode() if isinstance(raw_value, bytes) else raw_value
                if metric == "$":
                    row.cost = float(value)
                elif metric in _METRICS:
                    setattr(row, _METRICS[metric], int(value))
            rows.extend(found.values())
        return rows


def _entry_key(row: UsageRow) -> str:
    return f"{row.day}.{_SEP.join((row.key, row.model, row.provider)).encode().hex()}"


class KvUsageStore:
    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._kv: KeyValue | None = None

    @property
    def where(self) -> str:
        return f"the JetStream KV bucket {USAGE_BUCKET}"

    async def _bucket(self, create: bool = True) -> KeyValue | None:
        if self._kv is None:
            js = self._nc.jetstream()
            try:
                self._kv = await buckets.open_bucket(js, USAGE_BUCKET, ttl_s=KEEP_S, create=create,
                                                     description="aiub usage per day, key, model, provider "
                                                                 "(writer: gateway)")
            except BucketNotFoundError:
                return None
        return self._kv

    async def add(self, rows: Sequence[UsageRow]) -> None:
        kv = await self._bucket()
        assert kv is not None
        for row in rows:
            await self._add_one(kv, row)

    async def _add_one(self, kv: KeyValue, row: UsageRow) -> None:
        key = _entry_key(row)
        for _ in range(20):
            try:
                entry = await kv.get(key)
            except (KeyNotFoundError, KeyDeletedError):
                entry = None
            try:
                if entry is None or entry.value is None:
                    await kv.create(key, encode_row(row))
                else:
                    total = decode_row(entry.value)
                    total.add(row)
                    await kv.update(key, encode_row(total), last=entry.revision)
                return
            except (KeyWrongLastSequenceError, JetStreamError) as e:
                # Another gateway wrote it between our read and write: read again. (A create that
                # lost the race is a "wrong last sequence" too.)
                if not _lost_race(e):
                    raise
        raise RuntimeError(f"usage entry {key} kept changing under 20 attempts")

    async def read(self, days: Sequence[str]) -> list[UsageRow]:
        kv = await self._bucket(create=False)
        if kv is None:
            return []
        try:
            keys = await kv.keys()
        except NoKeysError:
            return []
        wanted = set(days)
        rows: list[UsageRow] = []
        for key in keys:
            if key.split(".", 1)[0] not in wanted:
                continue
            try:
                entry = await kv.get(key)
            except (KeyNotFoundError, KeyDeletedError):
                continue
            if entry.value:
                with contextlib.suppress(msgspec.DecodeError, msgspec.ValidationError):
                    rows.append(decode_row(entry.value))
        return rows


def _lost_race(error: Exception) -> bool:
    return isinstance(error, KeyWrongLastSequenceError) or "wrong last sequence" in str(error).lower()


class UsageRecorder:
    """The tally and its flushes. `store` is None until the lifespan opens one (the KV needs NATS)."""

    def __init__(self, clock: Callable[[], float] = time.time, flush_s: float = 1.0) -> None:
        self.tally = Tally()
        self.store: UsageStore | None = None
        self._clock = clock
        self._flush_s = flush_s
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.flush_failures = 0

    def add(self, key: str, model: str, provider: str, prompt_tokens: int, completion_tokens: int,
            cost: float) -> None:
        self.tally.add(self._clock(), key, model, provider, prompt_tokens, completion_tokens, cost)

    def start(self, store: UsageStore) -> None:
        self.store = store
        self._task = asyncio.create_task(self._run(), name="usage-flush")

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._flush_s)
            await self.flush()

    async def flush(self) -> bool:
        """Write what the tally holds; False (rows kept for next time) when the store failed."""
        if self.store is None or not len(self.tally):
            return True
        async with self._lock:
            rows = self.tally.take()
            try:
                await self.store.add(rows)
            except Exception as e:
                self.flush_failures += 1
                self.tally.put_back(rows)
                log.warning("usage_flush_failed", rows=len(rows), error=repr(e))
                return False
        return True

    async def close(self) -> None:
        await lifecycle.cancel_and_wait(self._task)
        self._task = None
        await self.flush()


def open_store(link: RedisLink | None, nc: Client) -> UsageStore:
    return RedisUsageStore(link) if link is not None else KvUsageStore(nc)
