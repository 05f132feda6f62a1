"""Where virtual key records live: Redis when configured (every gateway sees a revocation at once),
else one JSON file (mode 0600) that the gateway re-reads whenever it changes, so `aiub keys
revoke` takes effect on the next request without a restart.

A store that cannot answer raises KeyStoreUnavailable: the caller fails closed.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import msgspec

from services.gateway.keys import KeyRecord, decode_record, encode_record
from services.gateway.redis_link import RedisLink, RedisUnavailable


class KeyStoreUnavailable(Exception):
    pass


class KeyStore(Protocol):
    @property
    def where(self) -> str:
        """Where the records live, for a person: a gateway only knows keys stored where it looks."""

    async def get(self, key_id: str) -> KeyRecord | None: ...
    async def put(self, record: KeyRecord) -> None: ...
    async def all(self) -> list[KeyRecord]: ...


_decode_file = msgspec.json.Decoder(dict[str, KeyRecord]).decode
_encode_file = msgspec.json.Encoder(order="sorted").encode


class FileKeyStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None  # (inode, size, mtime_ns) of what `_records` holds
        self._records: dict[str, KeyRecord] = {}

    @property
    def where(self) -> str:
        return f"{self.path} (REDIS_URL is unset: gateways that use Redis will not know this key)"

    def _load(self) -> dict[str, KeyRecord]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._records = None, {}
            return self._records
        except OSError as e:
            raise KeyStoreUnavailable(f"cannot read the key file: {e.strerror}") from None
        seen = (st.st_ino, st.st_size, st.st_mtime_ns)
        if seen != self._seen:
            try:
                self._records = _decode_file(self.path.read_bytes()) if st.st_size else {}
            except (OSError, msgspec.DecodeError, msgspec.ValidationError) as e:
                raise KeyStoreUnavailable(f"the key file {self.path} is unreadable: {type(e).__name__}") from None
            self._seen = seen
        return self._records

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield

    async def get(self, key_id: str) -> KeyRecord | None:
        return self._load().get(key_id)

    async def all(self) -> list[KeyRecord]:
        return sorted(self._load().values(), key=lambda r: r.created_at)

    async def put(self, record: KeyRecord) -> None:
        with self._locked():
            self._seen = None
            records = dict(self._load())
            records[record.id] = record
            # Written whole and renamed into place: a reader sees the old file or the new one.
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keys-")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(_encode_file(records))
                os.chmod(tmp, 0o600)
                os.replace(tmp, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise


class RedisKeyStore:
    def __init__(self, link: RedisLink) -> None:
        self._link = link
        self._index = link.key("keys")

    @property
    def where(self) -> str:
        return f"Redis, under {self._index}"

    def _record_key(self, key_id: str) -> str:
        return self._link.key("key", key_id)

    async def get(self, key_id: str) -> KeyRecord | None:
        try:
            raw = await self._link.run(lambda r: r.get(self._record_key(key_id)), skip_when_down=False)
        except RedisUnavailable as e:
            raise KeyStoreUnavailable(str(e)) from None
        if raw is None:
            return None
        try:
            return decode_record(raw)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise KeyStoreUnavailable("a key record in Redis is unreadable") from None

    async def all(self) -> list[KeyRecord]:
        try:
            ids = await self._link.run(lambda r: r.smembers(self._index), skip_when_down=False)
            keys = [self._record_key(i.decode() if isinstance(i, bytes) else i) for i in sorted(ids)]
            raws = await self._link.run(lambda r: r.mget(keys), skip_when_down=False) if keys else []
        except RedisUnavailable as e:
            raise KeyStoreUnavailable(str(e)) from None
        return sorted((decode_record(raw) for raw in raws if raw is not None), key=lambda r: r.created_at)

    async def put(self, record: KeyRecord) -> None:
        async def write(r: object) -> None:
            async with self._link.client.pipeline(transaction=True) as pipe:
                pipe.set(self._record_key(record.id), encode_record(record))
                pipe.sadd(self._index, record.id)
                await pipe.execute()

        try:
            await self._link.run(write, skip_when_down=False)
        except RedisUnavailable as e:
            raise KeyStoreUnavailable(str(e)) from None
