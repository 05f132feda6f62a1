"""`aiub keys create|list|update|revoke`: manage virtual keys in the store the gateway reads.

That store is Redis when `REDIS_URL` is set (as for the gateway), else `<state dir>/keys.json`
or `auth.keys_file`. A new key is printed once; only its hash is stored.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from cli import stack_dir
from services.gateway import keys
from services.gateway.key_store import KeyStore, KeyStoreUnavailable
from services.gateway.policies import key_store
from services.gateway.redis_link import RedisLink
from shared import scope
from shared.config import Config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None)
    parser.add_argument("--state-dir", default=None,
                        help="where the key file lives without Redis (default: $AIUB_STATE_DIR, else the running "
                             "stack's, else ./.aiub)")
    actions = parser.add_subparsers(dest="action", required=True)
    create = actions.add_parser("create", help="make a key; it is printed once")
    create.add_argument("--name", default="", help="a label for `list`")
    create.add_argument("--models", nargs="+", default=[], metavar="MODEL",
                        help="models (or globs) the key may use; comma- or space-separated; default: all")
    create.add_argument("--rpm", type=int, default=None, help="requests per minute")
    create.add_argument("--tpm", type=int, default=None, help="tokens per minute (prompt + completion)")
    create.add_argument("--expires", default="never", help="30d, 12h, 90m, an ISO date, or never")
    _budget_arguments(create, int, float)
    create.add_argument("--json", action="store_true")
    update = actions.add_parser("update", help="change a key's limits and budgets ('none' removes one)")
    update.add_argument("key_id")
    update.add_argument("--rpm", type=_or_none(int), default=_KEEP, help="requests per minute, or none")
    update.add_argument("--tpm", type=_or_none(int), default=_KEEP, help="tokens per minute, or none")
    update.add_argument("--expires", default=None, help="30d, 12h, 90m, an ISO date, or never")
    _budget_arguments(update, _or_none(int), _or_none(float), default=_KEEP)
    update.add_argument("--json", action="store_true")
    listing = actions.add_parser("list", help="every key: id, status, limits (never the key)")
    listing.add_argument("--json", action="store_true")
    revoke = actions.add_parser("revoke", help="revoke a key by id; it stops working at once")
    revoke.add_argument("key_id")
    token = actions.add_parser("bus-token", help="a signed key scope for a program using the NATS client library "
                                                 "on a bus with AIUB_BUS_SECRET set")
    token.add_argument("--tenant", required=True, help="who the token is for (cache and logs scope)")
    token.add_argument("--models", nargs="+", default=[], metavar="MODEL", help="models (or globs); default: all")
    token.add_argument("--expires", default="30d", help="30d, 12h, 90m, an ISO date, or never")


_KEEP: Any = object()  # `update`: an option not given leaves its field as it is
_NONE = "none"


def _or_none(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.strip().lower() == _NONE else kind(text)

    parse.__name__ = kind.__name__  # argparse names it in its error
    return parse


def _budget_arguments(parser: argparse.ArgumentParser, tokens: Callable[[str], Any], money: Callable[[str], Any],
                      default: Any = None) -> None:
    parser.add_argument("--budget-tokens-day", type=tokens, default=default, help="tokens per UTC day")
    parser.add_argument("--budget-tokens-month", type=tokens, default=default, help="tokens per UTC calendar month")
    parser.add_argument("--budget-cost-day", type=money, default=default,
                        help="cost per UTC day, in the unit of cost_per_1k_tokens")
    parser.add_argument("--budget-cost-month", type=money, default=default, help="cost per UTC calendar month")


def _check_positive(values: dict[str, Any]) -> str | None:
    for name, value in values.items():
        if value is not None and value is not _KEEP and not (value > 0 and math.isfinite(value)):
            return f"--{name.replace('_', '-')} must be a positive number"
    return None


def _when(epoch: float | None) -> str:
    return "-" if epoch is None else datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


def _summary(record: keys.KeyRecord, now: float) -> dict[str, Any]:
    return {"id": record.id, "name": record.name, "status": keys.status(record, now), "models": list(record.models),
            "rpm": record.rpm, "tpm": record.tpm, **{f: getattr(record, f) for f in keys.BUDGET_FIELDS},
            "created": _when(record.created_at),
            "expires": _when(record.expires_at), "revoked": _when(record.revoked_at)}


async def _run(args: argparse.Namespace, store: KeyStore, *, enforced: bool = True,
               master_key_env: str = "AIUB_MASTER_KEY") -> int:
    now = time.time()
    if args.action == "create":
        models = tuple(m for part in args.models for m in part.split(",") if m)
        if args.models and not models:  # an empty shell variable must not widen a key to every model
            print("aiub keys: --models names no model; leave it out for a key that may use every model",
                  file=sys.stderr)
            return 2
        budgets = {f: getattr(args, f) for f in keys.BUDGET_FIELDS}
        problem = _check_positive({"rpm": args.rpm, "tpm": args.tpm, **budgets})
        if problem:
            print(f"aiub keys: {problem}", file=sys.stderr)
            return 2
        try:
            expires_at = keys.parse_expiry(args.expires, now)
        except ValueError as e:
            print(f"aiub keys: --expires: {e}", file=sys.stderr)
            return 2
        key, record = keys.new_key(now, name=args.name, models=models, rpm=args.rpm, tpm=args.tpm,
                                   expires_at=expires_at, budgets=budgets)
        await store.put(record)
        if args.json:
            print(json.dumps({"key": key, **_summary(record, now)}))
        else:
            print(key)
            print(f"id {record.id}, stored in {store.where}: keep the key now; it is not shown again",
                  file=sys.stderr)
        if not enforced:
            print(f"aiub keys: auth is off, so this key is not enforced: with no master key a gateway on "
                  f"loopback lets any client in, with or without a key. To enforce keys, set "
                  f"{master_key_env} (at least 16 characters) where the gateway runs and restart it.",
                  file=sys.stderr)
        return 0
    if args.action == "list":
        records = await store.all()
        rows = [_summary(r, now) for r in records]
        if args.json:
            print(json.dumps(rows))
            return 0
        print(f"{'id':<13} {'status':<8} {'rpm':>6} {'tpm':>8} {'budgets':<24} {'expires':<21} {'name':<16} models")
        for row in rows:
            print(f"{row['id']:<13} {row['status']:<8} {row['rpm'] or '-':>6} {row['tpm'] or '-':>8} "
                  f"{_budgets_text(row):<24} {row['expires']:<21} {row['name']:<16} {','.join(row['models']) or '*'}")
        return 0
    found = await store.get(args.key_id)
    if args.action == "update":
        return await _update(args, store, found, now)
    if found is None:
        print(f"aiub keys: no key with id {args.key_id!r}", file=sys.stderr)
        return 1
    if found.revoked_at is None:
        await store.put(msgspec.structs.replace(found, revoked_at=now))
    print(f"revoked {found.id}")
    return 0


def _budgets_text(row: dict[str, Any]) -> str:
    """`100000 tok/day, 5 $/month`; `-` without budgets."""
    parts = [f"{row[f]:g} {'tok' if 'tokens' in f else '$'}/{f.rsplit('_', 1)[1]}"
             for f in keys.BUDGET_FIELDS if row[f] is not None]
    return ", ".join(parts) or "-"


async def _update(args: argparse.Namespace, store: KeyStore, found: keys.KeyRecord | None, now: float) -> int:
    if found is None:
        print(f"aiub keys: no key with id {args.key_id!r}", file=sys.stderr)
        return 1
    if found.revoked_at is not None:
        print(f"aiub keys: key {found.id} is revoked; nothing to update (create a new key)", file=sys.stderr)
        return 1
    changes = {f: getattr(args, f) for f in ("rpm", "tpm", *keys.BUDGET_FIELDS) if getattr(args, f) is not _KEEP}
    problem = _check_positive(changes)
    if problem:
        print(f"aiub keys: {problem}", file=sys.stderr)
        return 2
    if args.expires is not None:
        try:
            changes["expires_at"] = keys.parse_expiry(args.expires, now)
        except ValueError as e:
            print(f"aiub keys: --expires: {e}", file=sys.stderr)
            return 2
    record = msgspec.structs.replace(found, **changes)
    await store.put(record)
    if args.json:
        print(json.dumps(_summary(record, now)))
    else:
        print(f"updated {record.id}: rpm {record.rpm or '-'}, tpm {record.tpm or '-'}, "
              f"budgets {_budgets_text(_summary(record, now))}")
    return 0


def _bus_token(args: argparse.Namespace, config: Config) -> int:
    secret = config.runtime.auth.bus_secret()
    if secret is None:
        print(f"aiub keys bus-token: set {config.runtime.auth.bus_secret_env} to the bus secret the workers use",
              file=sys.stderr)
        return 2
    try:
        expires_at = keys.parse_expiry(args.expires, time.time())
    except ValueError as e:
        print(f"aiub keys bus-token: {e}", file=sys.stderr)
        return 2
    models = tuple(m for item in args.models for m in item.split(",") if m)
    print(scope.issue(scope.Scope(tenant=f"bus:{args.tenant}", models=models, expires_at=expires_at), secret))
    return 0


def main(args: argparse.Namespace, config: Config) -> int:
    if args.action == "bus-token":
        return _bus_token(args, config)

    async def run() -> int:
        settings = config.runtime.redis
        url = settings.url()
        # A command-line tool can wait longer for Redis than a request can.
        link = RedisLink(url, settings.model_copy(update={"socket_timeout_s": 5.0, "connect_timeout_s": 5.0})) \
            if url else None
        try:
            auth = config.runtime.auth
            return await _run(args, key_store(config.runtime, link, stack_dir.state_dir_of(args.state_dir, os.environ)),
                              enforced=auth.master_key() is not None, master_key_env=auth.master_key_env)
        except KeyStoreUnavailable as e:
            print(f"aiub keys: the key store is unavailable: {e}", file=sys.stderr)
            return 1
        finally:
            if link is not None:
                await link.close()

    return asyncio.run(run())
