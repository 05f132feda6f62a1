"""`aiub usage`: tokens and cost per key, model, provider and day, from where the gateways keep them.

That is Redis when `REDIS_URL` is set (as for the gateway), else the `aiub_usage` JetStream KV
bucket on the stack's NATS (found like `aiub status` finds it: --nats, --state-dir, $AIUB_STATE_DIR,
./.aiub, the running `aiub up`, $NATS_URL). The same numbers are at `GET /admin/usage`.
A gateway writes its counts every second: the last second of traffic may not show yet.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from cli import stack_dir
from cli.status import find_nats_url
from services.gateway import usage
from services.gateway.redis_link import RedisLink
from services.gateway.usage import UsageRow
from services.gateway.usage_store import KvUsageStore, RedisUsageStore
from shared import bus
from shared.config import Config, Environment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None)
    parser.add_argument("--nats", default=None, help="NATS URL, without Redis (default: the running stack's)")
    parser.add_argument("--state-dir", default=None, help="where `aiub up` keeps its state (to find its NATS)")
    parser.add_argument("--key", default=None, help="one key id (or master, anonymous)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--provider", default=None)
    parser.add_argument("--since", default=None, help="first day, YYYY-MM-DD (default: 29 days ago, UTC)")
    parser.add_argument("--until", default=None, help="last day, YYYY-MM-DD (default: today, UTC)")
    parser.add_argument("--days", type=int, default=None, help="the last N days, today included")
    parser.add_argument("--by", default="key,model,day",
                        help="columns to keep, comma-separated, of key, model, provider, day (default: key,model,day)")
    parser.add_argument("--json", action="store_true")


def render_table(rows: Sequence[UsageRow], by: Sequence[str]) -> str:
    columns = [c for c in ("day", "key", "model", "provider") if c in by]
    widths = {c: max([len(c)] + [len(getattr(r, c)) for r in rows]) for c in columns}
    head = "  ".join(f"{c:<{widths[c]}}" for c in columns)
    lines = [f"{head}  {'requests':>8}  {'prompt':>10}  {'completion':>10}  {'total':>10}  {'cost':>10}"]
    for r in rows:
        cells = "  ".join(f"{getattr(r, c):<{widths[c]}}" for c in columns)
        lines.append(f"{cells}  {r.requests:>8}  {r.prompt_tokens:>10}  {r.completion_tokens:>10}  "
                     f"{r.total_tokens:>10}  {r.cost:>10.4f}")
    if not rows:
        lines.append("(no usage in this range)")
    return "\n".join(lines)


def as_json(rows: Sequence[UsageRow], since: str, until: str, by: Sequence[str]) -> dict[str, Any]:
    """The shape of GET /admin/usage."""
    return {"object": "list", "since": since, "until": until, "group_by": list(by), "data": [
        {"day": r.day, "key": r.key, "model": r.model, "provider": r.provider, "requests": r.requests,
         "prompt_tokens": r.prompt_tokens, "completion_tokens": r.completion_tokens, "total_tokens": r.total_tokens,
         "cost": r.cost} for r in rows]}


async def _read(config: Config, nats_url: str | None, days: list[str]) -> list[UsageRow]:
    settings = config.runtime.redis
    url = settings.url()
    if url:
        link = RedisLink(url, settings.model_copy(update={"socket_timeout_s": 5.0, "connect_timeout_s": 5.0}))
        try:
            return await RedisUsageStore(link).read(days)
        finally:
            await link.close()
    assert nats_url is not None
    nc = await bus.connect_once(nats_url, 3)
    try:
        return await KvUsageStore(nc).read(days)
    finally:
        await nc.close()


def main(args: argparse.Namespace, config: Config, environment: Environment) -> int:
    try:
        since, until = usage.default_range(time.time(), args.days or 30)
        since = usage.parse_day(args.since) if args.since else since
        until = usage.parse_day(args.until) if args.until else until
        days = usage.days_between(since, until)
        by = usage.parse_groups(args.by)
    except ValueError as e:
        print(f"aiub usage: {e}", file=sys.stderr)
        return 2
    nats_url: str | None = None
    if not config.runtime.redis.url():
        located = stack_dir.locate(args.state_dir, environment.state_dir,
                                   stack_dir.pointer_file(environment.xdg_state_home, environment.home))
        nats_url = find_nats_url(args.nats, located.state_dir, environment.nats_url)
        if nats_url is None:
            print(stack_dir.no_stack_found("aiub usage", located), file=sys.stderr)
            return 1
    try:
        rows = asyncio.run(_read(config, nats_url, days))
    except Exception as e:
        where = "Redis" if nats_url is None else f"NATS at {nats_url}"
        print(f"aiub usage: cannot read usage from {where}: {e!r}", file=sys.stderr)
        return 1
    grouped = usage.group(usage.select(rows, key=args.key, model=args.model, provider=args.provider), by)
    if args.json:
        print(json.dumps(as_json(grouped, since, until, by), indent=2))
    else:
        print(render_table(grouped, by))
    return 0
