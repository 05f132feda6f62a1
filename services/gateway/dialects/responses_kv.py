"""Stored responses, the I/O: the `aiub_responses` JetStream KV bucket every gateway replica sees.

Thin on purpose: what an entry holds and who may read it is responses_store.py. The bucket is
opened (or created: the same settings make creating idempotent, so whichever replica comes
first creates it) on first use, with the entries' age limit (`gateway.responses_ttl_s`); a
bucket made with another age is brought to the configured one. A NATS server restarted without
its JetStream data has lost the bucket: an operation that fails opens it again and tries once
more. A store that still cannot answer raises ServiceUnavailable: a 503 for the reader, a logged
warning for a writer (the client already has its answer).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from nats.aio.client import Client
from nats.js.errors import BucketNotFoundError, KeyDeletedError, KeyNotFoundError
from nats.js.kv import KeyValue

from shared import buckets, logs, subjects
from shared.errors import ServiceUnavailable

log = logs.get("gateway.responses")


def unavailable(detail: str) -> ServiceUnavailable:
    return ServiceUnavailable(f"the response store is unavailable ({detail})", code="response_store_unavailable")


class ResponseKV:
    def __init__(self, connection: Callable[[], Client | None], ttl_s: float) -> None:
        self._connection = connection
        self._ttl_s = ttl_s
        self._kv: KeyValue | None = None

    async def _open(self) -> KeyValue:
        nc = self._connection()
        if nc is None:
            raise unavailable("the gateway is not connected to NATS")
        js = nc.jetstream()
        try:
            kv = await js.key_value(subjects.RESPONSES_BUCKET)
        except BucketNotFoundError:
            return await buckets.open_bucket(js, subjects.RESPONSES_BUCKET, ttl_s=self._ttl_s,
                                             description="aiub: stored Responses API responses (writer: gateway)")
        info = await js.stream_info(f"KV_{subjects.RESPONSES_BUCKET}")
        if info.config.max_age is None or abs(info.config.max_age - self._ttl_s) > 0.001:
            await js.update_stream(dataclasses.replace(info.config, max_age=self._ttl_s))
            log.info("responses_ttl_changed", was_s=info.config.max_age, now_s=self._ttl_s)
        return kv

    async def _bucket(self, again: bool) -> KeyValue:
        if self._kv is None or again:
            self._kv = await self._open()
        return self._kv

    async def get(self, key: str) -> bytes | None:
        for again in (False, True):
            try:
                entry = await (await self._bucket(again)).get(key)
                return entry.value
            except (KeyNotFoundError, KeyDeletedError):
                return None
            except Exception as e:
                failure = e
        raise unavailable(repr(failure))

    async def put(self, key: str, value: bytes) -> None:
        for again in (False, True):
            try:
                await (await self._bucket(again)).put(key, value)
                return
            except Exception as e:
                failure = e
        raise unavailable(repr(failure))

    async def delete(self, key: str) -> None:
        for again in (False, True):
            try:
                await (await self._bucket(again)).purge(key)
                return
            except Exception as e:
                failure = e
        raise unavailable(repr(failure))
