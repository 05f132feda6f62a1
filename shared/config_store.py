"""The `aiub_config` JetStream KV bucket: config revisions (shared/config/revisions.py) on the bus.

Keys: `rev.<n>` holds revision n forever (history, diff, rollback); `current` holds a copy of the
revision every service runs, which is the one key services watch. A push writes `rev.<n>` with
create (no two pushers get the same number) and then `current` with compare-and-set on the
sequence it read, so concurrent pushes are ordered, and a lost race is retried with the next number.
"""

from __future__ import annotations

import time

import msgspec
from nats.js import JetStreamContext
from nats.js.errors import (
    KeyDeletedError,
    KeyNotFoundError,
    KeyWrongLastSequenceError,
    NoKeysError,
)
from nats.js.kv import KeyValue

from shared import buckets, logs, subjects
from shared.config.revisions import (
    CURRENT_KEY,
    Revision,
    encode,
    next_revision,
    number_of_key,
    revision_decoder,
    revision_key,
    same_files,
)

log = logs.get("config_store")


async def open_bucket(js: JetStreamContext, create: bool = True) -> KeyValue:
    """The bucket, created if absent (whoever comes first: the config is the same), R3 where the
    cluster allows it. `create=False`: BucketNotFoundError when nobody has pushed yet."""
    return await buckets.open_bucket(js, subjects.CONFIG_BUCKET, create=create,
                                     description="aiub config revisions (writer: aiub config push)")


async def current(kv: KeyValue) -> tuple[Revision | None, int | None]:
    """The running revision and the KV sequence of `current` (for compare-and-set); (None, None) if none."""
    try:
        entry = await kv.get(CURRENT_KEY)
    except (KeyNotFoundError, KeyDeletedError):
        return None, None
    return (revision_decoder.decode(entry.value) if entry.value else None), entry.revision


async def revision(kv: KeyValue, number: int) -> Revision | None:
    try:
        entry = await kv.get(revision_key(number))
    except (KeyNotFoundError, KeyDeletedError):
        return None
    return revision_decoder.decode(entry.value) if entry.value else None


async def history(kv: KeyValue) -> list[Revision]:
    """Every revision, oldest first."""
    try:
        keys = await kv.keys()
    except NoKeysError:
        return []
    numbers = sorted(n for n in (number_of_key(k) for k in keys) if n is not None)
    found = [await revision(kv, n) for n in numbers]
    return [r for r in found if r is not None]


async def publish(kv: KeyValue, files: dict[str, str], source: str, attempts: int = 10) -> tuple[Revision, bool]:
    """`files` as the next revision; returns it and whether it is new (False: they already run).
    A number some pusher took and never made current (it lost the race, or died in between) is
    skipped: history has a gap there, never two revisions with one number."""
    floor = 0
    for _ in range(attempts):
        running, sequence = await current(kv)
        if same_files(running, files):
            assert running is not None
            return running, False
        new = next_revision(running, files, time.time(), source)
        new = msgspec.structs.replace(new, number=max(new.number, floor + 1))
        for _ in range(100):
            try:
                await kv.create(revision_key(new.number), encode(new))
                break
            except KeyWrongLastSequenceError:
                new = msgspec.structs.replace(new, number=new.number + 1)
        floor = new.number
        try:
            if sequence is None:
                await kv.create(CURRENT_KEY, encode(new))
            else:
                await kv.update(CURRENT_KEY, encode(new), last=sequence)
        except KeyWrongLastSequenceError:
            continue  # another push became current meanwhile: ours follows it, with a higher number
        log.info("config_published", revision=new.number, source=source)
        return new, True
    raise RuntimeError(f"could not publish a config revision after {attempts} attempts: other pushes kept winning")
