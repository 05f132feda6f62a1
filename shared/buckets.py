"""Open a JetStream KV bucket, creating it with as many replicas as the cluster allows.

Every aiub bucket (`aiub_health`, `aiub_config`, `aiub_responses`, `aiub_usage`) is opened here:

- an existing bucket is opened as it is (its replica count is whatever it was created with);
- an absent one is created with three replicas (R3: it survives a lost node of a cluster of
  three, docs/multi-host.md), and with one (R1) when the server refuses R3: a single server,
  or a cluster short of nodes;
- whoever starts first creates it: two creators racing with the same config both succeed, and
  the loser of a race with another config (JetStream's "stream name already in use") opens
  the winner's bucket.
"""

from __future__ import annotations

from nats.js import JetStreamContext
from nats.js.errors import APIError, BucketNotFoundError
from nats.js.kv import KeyValue

from shared import logs

log = logs.get("buckets")
BAD_REQUEST_IN_USE = 10058  # JetStream: the stream exists with another config (a racing creator's)
REPLICAS = (3, 1)


async def open_bucket(js: JetStreamContext, bucket: str, *, description: str, ttl_s: float | None = None,
                      create: bool = True) -> KeyValue:
    """`bucket`, created if absent (history 1, `ttl_s` if given). `create=False`: raise
    BucketNotFoundError when it does not exist yet."""
    try:
        return await js.key_value(bucket)
    except BucketNotFoundError:
        if not create:
            raise
    for replicas in REPLICAS:
        try:
            return await js.create_key_value(bucket=bucket, history=1, ttl=ttl_s, replicas=replicas,
                                             description=description)
        except APIError as e:
            if e.err_code == BAD_REQUEST_IN_USE:
                return await js.key_value(bucket)
            if replicas == REPLICAS[-1]:
                raise
            log.info("bucket_single_replica", bucket=bucket, reason=e.description)
    raise AssertionError("unreachable")
