"""`aiub status`: the providers' states as the health service publishes them.

It reads the `aiub_health` bucket once (the same source the routers watch) and prints a
table, or JSON with `--json`. With no `--nats` it finds the stack `aiub up` started by the rule
of cli/stack_dir.py (--state-dir, $AIUB_STATE_DIR, ./.aiub, the state dir `aiub up` recorded)
and reads its NATS URL from `<state-dir>/stack.json`, else takes `$NATS_URL`; with none of
these it says "no stack found" rather than ask a default URL some other server may answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from nats.js.errors import BucketNotFoundError, KeyDeletedError, KeyNotFoundError, NoKeysError

from cli import stack_dir
from cli.durations import age as age_text
from cli.durations import duration
from services.health.leader import Lease, lease_decoder
from shared import bus, subjects
from shared.config import Environment
from shared.health_view import Heartbeat, heartbeat_decoder
from shared.messages import ProviderState, state_decoder
from shared.nats_library import nats

STALE_AFTER_S = 10.0


@dataclass(frozen=True)
class Snapshot:
    nats_url: str
    states: tuple[ProviderState, ...]
    heartbeat: Heartbeat | None
    lease: Lease | None
    bucket_found: bool = True


def find_nats_url(explicit: str | None, state_dir: Path | None, environment: str | None) -> str | None:
    """--nats, else the NATS of the stack found in `state_dir` (None: no stack found), else
    $NATS_URL (`environment`); None when none of them names one."""
    if explicit:
        return explicit
    if state_dir is not None:
        try:
            found = json.loads((state_dir / stack_dir.STACK_FILE).read_text()).get("nats_url")
            if isinstance(found, str) and found:
                return found
        except (OSError, ValueError, AttributeError):
            pass
    return environment or None


async def read_snapshot(url: str, timeout_s: float = 3.0) -> Snapshot:
    nc = await bus.connect_once(url, timeout_s)
    try:
        try:
            kv = await nc.jetstream(timeout=timeout_s).key_value(subjects.HEALTH_BUCKET)
        except BucketNotFoundError:
            return Snapshot(url, (), None, None, bucket_found=False)
        try:
            keys = await kv.keys()
        except NoKeysError:
            keys = []
        values: dict[str, bytes] = {}
        for key in keys:
            try:
                values[key] = (await kv.get(key)).value or b""
            except (KeyNotFoundError, KeyDeletedError):
                continue
    finally:
        await nc.close()
    states: list[ProviderState] = []
    heartbeat: Heartbeat | None = None
    lease: Lease | None = None
    for key, value in sorted(values.items()):
        try:
            if key == subjects.HEALTH_HEARTBEAT_KEY:
                heartbeat = heartbeat_decoder.decode(value)
            elif key == subjects.HEALTH_LEADER_KEY:
                lease = lease_decoder.decode(value)
            elif not key.startswith("_"):
                states.append(state_decoder.decode(value))
        except (msgspec.ValidationError, msgspec.DecodeError):
            continue
    return Snapshot(url, tuple(states), heartbeat, lease)


def as_dict(snapshot: Snapshot, now: float) -> dict[str, Any]:
    age = None if snapshot.heartbeat is None else now - snapshot.heartbeat.at
    return {
        "nats_url": snapshot.nats_url,
        "leader": snapshot.heartbeat.leader if snapshot.heartbeat else None,
        "heartbeat_age_s": age,
        "stale": age is None or age > STALE_AFTER_S,
        "providers": [{**msgspec.to_builtins(s), "routable": s.routable} for s in snapshot.states],
    }


def render_table(snapshot: Snapshot, now: float) -> str:
    if not snapshot.bucket_found:
        return f"no health state at {snapshot.nats_url}: the health service has not run against this NATS"
    lines = []
    if snapshot.heartbeat is None:
        lines.append("health service: no heartbeat (never ran, or its state was removed): states may be STALE")
    else:
        age = now - snapshot.heartbeat.at
        stale = "  STALE: the health service is not running" if age > STALE_AFTER_S else ""
        lines.append(f"health service: leader {snapshot.heartbeat.leader}, heartbeat {age_text(age)} ago{stale}")
    rows = [("PROVIDER", "STATE", "SINCE", "ADMIT", "PROBE", "REASON")]
    for s in snapshot.states:
        label: str = s.state
        if s.state == "unavailable" and s.open_until is not None and s.open_until > now:
            label += f" ({s.open_until - now:.0f}s left)"
        rows.append((s.provider, label, f"{age_text(now - s.since)} ago" if s.since else "-", f"{s.admit_fraction:g}",
                     duration(s.probe_latency_s, missing="-"), s.reason))
    if len(rows) == 1:
        lines.append("no provider states yet")
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    return "\n".join(lines)


def main(args: argparse.Namespace, environment: Environment) -> int:
    located = stack_dir.locate(args.state_dir, environment.state_dir,
                               stack_dir.pointer_file(environment.xdg_state_home, environment.home))
    url = find_nats_url(args.nats, located.state_dir, environment.nats_url)
    if url is None:
        print(stack_dir.no_stack_found("aiub status", located), file=sys.stderr)
        return 1
    try:
        snapshot = asyncio.run(read_snapshot(url))
    except (OSError, TimeoutError, nats.errors.Error) as e:
        print(f"aiub status: cannot reach NATS at {url}: {e!r}\n"
              "start the stack with `aiub up`, or name the server with --nats URL", file=sys.stderr)
        return 1
    now = time.time()
    if args.json:
        print(json.dumps(as_dict(snapshot, now), indent=2))
        return 0
    print(render_table(snapshot, now))
    if snapshot.states:
        return 0
    if not args.nats and located.state_dir is not None and not located.found:
        print(f"(no running `aiub up` in {located.state_dir.resolve()}, named by {located.how}: "
              f"pass --state-dir DIR or --nats URL)", file=sys.stderr)
    return 1

