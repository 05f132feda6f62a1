"""Config revisions on the bus (docs/configuration.md, "Live config"): the record, how two compare,
and what a running service does with a new one. Pure: no nats, no asyncio, no clock of its own.

The rules:
- A revision is a config directory's files as text, exactly as pushed (`${VAR}` unexpanded), with a
  number (1, 2, ...), the wall clock of the push and where it came from. Each service expands
  `${VAR}` with its own environment when it applies the revision: hosts may differ (compose).
- A service applies a revision numbered above the one it runs; an equal or lower number is ignored
  (a watcher delivers the current value again after every reconnect).
- A revision applies whole or not at all: it must load here (this host's environment) and the
  service must be able to serve it (a worker's providers must all be in it). Otherwise the service
  keeps its running revision and says why; nothing of the new one is used.
- Settings a service reads only at start (listeners, pools sized at start) keep their running
  value after an apply; `restart_needed` names them, and the service logs that a restart applies them.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import msgspec
from pydantic import BaseModel

from shared.config.base import ConfigError
from shared.config.schema import Config

FILES = ("providers.yaml", "model-mappings.yaml", "aiub.yaml")
CURRENT_KEY = "current"  # the revision every service runs: the whole record, so one watch delivers it
REVISION_KEY_PREFIX = "rev."  # rev.<number>: every revision ever pushed, for history, diff and rollback

Role = Literal["gateway", "router", "health", "worker"]


class Revision(msgspec.Struct, frozen=True, kw_only=True):
    number: int
    files: dict[str, str]  # file name -> text as pushed; an absent optional aiub.yaml is not a key
    pushed_at: float  # the pusher's wall clock
    source: str = ""  # where it came from: "aiub config push DIR", "aiub up", "dashboard", "rollback to 3"


revision_decoder = msgspec.json.Decoder(Revision)


def encode(revision: Revision) -> bytes:
    return msgspec.json.encode(revision)


def revision_key(number: int) -> str:
    return f"{REVISION_KEY_PREFIX}{number}"


def number_of_key(key: str) -> int | None:
    """The revision number a `rev.<n>` key holds; None for any other key."""
    if not key.startswith(REVISION_KEY_PREFIX):
        return None
    tail = key[len(REVISION_KEY_PREFIX):]
    return int(tail) if tail.isdigit() else None


def next_revision(current: Revision | None, files: Mapping[str, str], pushed_at: float, source: str) -> Revision:
    """The revision after `current` holding `files` (only the config's own files are kept)."""
    kept = {name: files[name] for name in FILES if name in files}
    return Revision(number=(current.number if current else 0) + 1, files=kept, pushed_at=pushed_at, source=source)


def same_files(current: Revision | None, files: Mapping[str, str]) -> bool:
    """Pushing what already runs publishes nothing (`aiub up` pushes at every start)."""
    return current is not None and current.files == {name: files[name] for name in FILES if name in files}


def diff(old: Revision | None, new: Revision) -> str:
    """A unified diff of each file, old to new; empty when they hold the same texts."""
    out: list[str] = []
    before = old.files if old is not None else {}
    for name in FILES:
        a, b = before.get(name), new.files.get(name)
        if a == b:
            continue
        out.extend(difflib.unified_diff(
            (a or "").splitlines(keepends=True), (b or "").splitlines(keepends=True),
            fromfile=f"rev {old.number}/{name}" if old is not None and a is not None else "/dev/null",
            tofile=f"rev {new.number}/{name}" if b is not None else "/dev/null"))
        if out and not out[-1].endswith("\n"):
            out[-1] += "\n"
    return "".join(out)


# -- applying a revision in a running service ------------------------------------------------------

@dataclass(frozen=True)
class Apply:
    """Swap to `config` (revision `number`); `restart_needed` keep their running values."""

    config: Config
    number: int
    restart_needed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Keep:
    """Refused: the running revision stays, whole. `reason` is what the log says."""

    number: int
    reason: str


@dataclass(frozen=True)
class Ignore:
    """Not newer than the running revision (a redelivery after a reconnect)."""

    number: int


def decide(role: Role, running: Config, running_number: int, revision: Revision, loaded: Config | ConfigError,
           served: Sequence[str] = ()) -> Apply | Keep | Ignore:
    """What a service running revision `running_number` (0: its files) does with `revision`, which
    loaded here as `loaded`. `served`: the providers a worker process serves."""
    if revision.number <= running_number:
        return Ignore(revision.number)
    if isinstance(loaded, ConfigError):
        return Keep(revision.number, f"revision {revision.number} does not load here: {loaded}")
    refusal = cannot_apply(role, loaded, served)
    if refusal is not None:
        return Keep(revision.number, f"revision {revision.number}: {refusal}")
    return Apply(loaded, revision.number, restart_needed(role, running, loaded, served))


def cannot_apply(role: Role, new: Config, served: Sequence[str] = ()) -> str | None:
    """Why this service cannot run `new` at all, or None."""
    if role == "worker":
        missing = [p for p in served if p not in new.providers]
        if missing:
            return (f"this worker serves {', '.join(missing)} (--provider) and the revision has no such "
                    f"provider; stop this worker, or push a revision that keeps "
                    f"{'it' if len(missing) == 1 else 'them'}")
    return None


# Read once at start (a listener, a pool, a loop's interval, a connection): keep their running values.
_GATEWAY_AT_START = (
    ("runtime", "limits", "max_header_bytes"), ("runtime", "limits", "max_headers"),
    ("runtime", "limits", "header_timeout_s"), ("runtime", "gateway", "cors_origins"),
    ("runtime", "gateway", "responses_ttl_s"), ("runtime", "redis"), ("runtime", "auth"),
    ("runtime", "cache", "enabled"), ("runtime", "cache", "max_entries"), ("runtime", "cache", "max_entry_bytes"),
)
_WORKER_AT_START = (
    ("runtime", "worker", "load_report_s"), ("runtime", "worker", "caller_check_s"),
    ("runtime", "worker", "backend_load_s"), ("runtime", "auth", "bus_secret_env"),
)
_WORKER_PROVIDER_AT_START = ("max_concurrency", "queue_size", "load_endpoint")


def restart_needed(role: Role, old: Config, new: Config, served: Sequence[str] = ()) -> tuple[str, ...]:
    """The key paths whose new value this service takes only at its next start (they differ)."""
    changed: list[str] = []
    if role == "gateway":
        changed += [".".join(path) for path in _GATEWAY_AT_START if _at(old, path) != _at(new, path)]
    elif role == "worker":
        changed += [".".join(path) for path in _WORKER_AT_START if _at(old, path) != _at(new, path)]
        for provider in served:
            before, after = old.providers.get(provider), new.providers.get(provider)
            if before is None or after is None:
                continue
            changed += [f"providers.{provider}.{name}" for name in _WORKER_PROVIDER_AT_START
                        if getattr(before, name) != getattr(after, name)]
    return tuple(changed)


def _at(config: Config, path: tuple[str, ...]) -> object:
    value: object = config
    for name in path:
        value = getattr(value, name)
    return value.model_dump() if isinstance(value, BaseModel) else value


def push_notes(running: Config | None, new: Config) -> list[str]:
    """What a push should tell its operator beyond `aiub validate`: providers it removes (a worker
    serving one keeps the running revision until it is stopped) and new ones (no worker serves them
    until one is started: `aiub worker --provider KEY`)."""
    if running is None:
        return []
    notes = [f"providers.{name}: removed; a worker serving it keeps running the current revision until stopped"
             for name in running.providers if name not in new.providers]
    notes += [f"providers.{name}: new; start a worker for it (aiub worker --provider {name})"
              for name in new.providers if name not in running.providers]
    return notes
