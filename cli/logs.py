"""`aiub logs`: the log files `aiub up` writes (one per service, `<state-dir>/<name>.log`) as one stream.

    aiub logs                          the last 50 lines of every service, merged by time
    aiub logs --request req_abc123     every line of one request, across all services
    aiub logs --service worker -f      follow the workers' logs (worker-ollama, worker-vllm, ...)
    aiub logs --level warning --json   warnings and errors as JSON lines, for jq

Each service writes JSON lines with `timestamp`, `level`, `event`, `service` and, for a
request's lines, `request_id` (the id the client got in `x-request-id`). `--request` keeps
the lines that contain the id, like `grep` over every file would. Lines that are not JSON (a
traceback) are kept with the timestamp of the line before them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import orjson

from cli import stack_dir

LEVELS = {"debug": 10, "info": 20, "warn": 30, "warning": 30, "error": 40, "exception": 40, "critical": 50}
_FIRST_KEYS = ("request_id", "model", "provider", "latency_ms", "cache_hit", "status")
_SKIP_KEYS = {"timestamp", "level", "event", "service"}


@dataclass(frozen=True)
class LogLine:
    source: str  # the file's name without `.log`: `router`, `worker-ollama`
    text: str
    timestamp: str  # normalised so that plain string order is time order
    fields: dict[str, Any] | None = field(default=None, compare=False)

    @property
    def level(self) -> int | None:
        if self.fields is None:
            return None
        return LEVELS.get(str(self.fields.get("level", "")).lower())


def _normalise(timestamp: Any) -> str:
    # structlog writes `2025-11-11T14:30:00.123456Z`; stdlib lines `2025-11-11 14:30:00,123`.
    return str(timestamp).replace(" ", "T").replace(",", ".").rstrip("Z") if timestamp else ""


def parse(source: str, lines: Iterable[str], last_timestamp: str = "") -> list[LogLine]:
    out = []
    for text in lines:
        text = text.rstrip("\n")
        if not text:
            continue
        fields: dict[str, Any] | None = None
        if text.startswith("{"):
            try:
                decoded = orjson.loads(text)
                fields = decoded if isinstance(decoded, dict) else None
            except orjson.JSONDecodeError:
                fields = None
        if fields is not None and fields.get("timestamp"):
            last_timestamp = _normalise(fields["timestamp"])
        out.append(LogLine(source, text, last_timestamp, fields))
    return out


@dataclass(frozen=True)
class Filter:
    request: str | None = None
    min_level: int | None = None

    def __call__(self, line: LogLine) -> bool:
        if self.request is not None and self.request not in line.text:
            return False
        if self.min_level is not None:
            level = line.level
            return level is not None and level >= self.min_level
        return True


def merge(lines: Iterable[LogLine]) -> list[LogLine]:
    """Time order across files; lines of one file with equal timestamps keep their order."""
    return sorted(lines, key=lambda line: line.timestamp)


def pretty(line: LogLine) -> str:
    if line.fields is None:
        return f"{'':12} {'':5} {line.source:<18} {line.text}"
    f = line.fields
    clock = line.timestamp.partition("T")[2][:12] or line.timestamp
    level = str(f.get("level", "")).upper()[:5]
    rest = [f"{k}={f[k]}" for k in _FIRST_KEYS if f.get(k) is not None]
    rest += [f"{k}={v}" for k, v in f.items() if k not in _SKIP_KEYS and k not in _FIRST_KEYS and v is not None]
    return f"{clock:<12} {level:<5} {line.source:<18} {f.get('event', '')}  {' '.join(rest)}".rstrip()


def log_files(state_dir: Path, service: str | None = None) -> list[Path]:
    files = sorted(state_dir.glob("*.log"))
    if service:
        files = [p for p in files if p.stem == service or p.stem.startswith(service + "-")]
    return files


def tail(path: Path, count: int, block: int = 64 * 1024) -> list[str]:
    """The last `count` lines of a file, reading from its end."""
    with path.open("rb") as f:
        f.seek(0, 2)
        position = f.tell()
        data = b""
        while position > 0 and data.count(b"\n") <= count:
            step = min(block, position)
            position -= step
            f.seek(position)
            data = f.read(step) + data
    lines = data.decode(errors="replace").splitlines()
    return lines[-count:] if count else []


def read(files: Iterable[Path], keep: Filter, count: int | None) -> list[LogLine]:
    """The last `count` matching lines (every matching line when None) of all files, in time order."""
    found: list[LogLine] = []
    for path in files:
        if count is not None and keep == Filter():
            lines = tail(path, count)
        else:
            lines = path.read_text(errors="replace").splitlines()
        found.extend(line for line in parse(path.stem, lines) if keep(line))
    merged = merge(found)
    return merged if count is None else merged[-count:] if count else []


class Follower:
    """New lines appended to the files since the last poll; a file that shrank is read again from its start."""

    def __init__(self, state_dir: Path, service: str | None) -> None:
        self._state_dir = state_dir
        self._service = service
        self._offsets: dict[Path, int] = {p: p.stat().st_size for p in log_files(state_dir, service)}
        self._partial: dict[Path, str] = {}
        self._last_timestamp: dict[Path, str] = {}

    def poll(self) -> list[LogLine]:
        found: list[LogLine] = []
        for path in log_files(self._state_dir, self._service):
            offset = self._offsets.get(path, 0)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size < offset:
                offset, self._partial[path] = 0, ""
            if size == offset:
                continue
            with path.open("rb") as f:
                f.seek(offset)
                chunk = f.read(size - offset)
            self._offsets[path] = size
            text = self._partial.pop(path, "") + chunk.decode(errors="replace")
            complete, _, partial = text.rpartition("\n")
            if partial:
                self._partial[path] = partial
            lines = parse(path.stem, complete.splitlines(), self._last_timestamp.get(path, ""))
            if lines:
                self._last_timestamp[path] = lines[-1].timestamp
            found.extend(lines)
        return merge(found)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--state-dir", default=None,
                        help="where `aiub up` writes the logs (default: $AIUB_STATE_DIR, else the running stack's, "
                             "else ./.aiub)")
    parser.add_argument("--service", default=None, metavar="NAME",
                        help="one service: gateway, router, health, worker (every worker) or worker-KEY")
    parser.add_argument("--request", default=None, metavar="ID", help="only the lines of this request id")
    parser.add_argument("--level", default=None, choices=sorted(LEVELS), help="only lines at this level or above")
    parser.add_argument("-n", "--lines", type=int, default=None,
                        help="how many of the latest lines (default: 50; every line with --request)")
    parser.add_argument("-f", "--follow", action="store_true", help="keep printing new lines until Ctrl-C")
    parser.add_argument("--json", action="store_true", help="print the raw JSON lines (default: one readable line)")


def _emit(lines: Iterable[LogLine], as_json: bool, out: TextIO) -> None:
    for line in lines:
        out.write((line.text if as_json else pretty(line)) + "\n")
    out.flush()


def main(args: argparse.Namespace, out: TextIO | None = None, polls: Iterator[None] | None = None) -> int:
    """`polls`: in follow mode, one item per poll (tests end it); by default poll until Ctrl-C."""
    out = out or sys.stdout
    state_dir = stack_dir.state_dir_of(args.state_dir, os.environ)
    if not state_dir.is_dir():
        print(f"aiub logs: no log directory {state_dir} (start the stack with `aiub up`, or pass --state-dir)",
              file=sys.stderr)
        return 1
    files = log_files(state_dir, args.service)
    if not files and not args.follow:
        print(f"aiub logs: no {args.service + ' ' if args.service else ''}log files in {state_dir}", file=sys.stderr)
        return 1
    keep = Filter(args.request, LEVELS[args.level] if args.level else None)
    count = args.lines if args.lines is not None else (None if args.request else 50)
    # Before reading, so a line written meanwhile is printed twice rather than lost.
    follower = Follower(state_dir, args.service) if args.follow else None
    _emit(read(files, keep, count), args.json, out)
    if follower is None:
        return 0
    try:
        for _ in polls if polls is not None else iter(lambda: time.sleep(0.25), object()):
            _emit((line for line in follower.poll() if keep(line)), args.json, out)
    except KeyboardInterrupt:
        pass
    return 0
