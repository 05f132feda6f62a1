"""shared/buckets.py against one real NATS server: R3 refused, so R1; racing creators share one
bucket; `create=False` finds none. The R3 side is tests/netlab's (a cluster of three)."""

from __future__ import annotations

import asyncio
import uuid

import nats
import pytest
from nats.js.errors import BucketNotFoundError

from shared import buckets


async def test_a_single_server_gets_one_replica_and_racing_creators_share_the_bucket(nats_url: str) -> None:
    name = f"test_{uuid.uuid4().hex[:8]}"
    nc = await nats.connect(nats_url)
    try:
        js = nc.jetstream()
        with pytest.raises(BucketNotFoundError):
            await buckets.open_bucket(js, name, description="test", create=False)
        opened = await asyncio.gather(*(buckets.open_bucket(js, name, description="test", ttl_s=60)
                                        for _ in range(3)))
        await opened[0].put("k", b"v")
        assert [(await kv.get("k")).value for kv in opened] == [b"v"] * 3
        info = await js.stream_info(f"KV_{name}")
        assert info.config.num_replicas == 1
        assert info.config.max_age == 60
        await js.delete_key_value(name)
    finally:
        await nc.close()
