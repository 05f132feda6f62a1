"""`aiub config push|history|diff|rollback|show`: config revisions in the `aiub_config` KV bucket.

A push validates first, with the checks and messages of `aiub validate` (cli/validate/), and the
loader's final word; any error refuses it: nothing is published, exit 1. Only then are the files'
texts published as a new revision (shared/config_store.py), which every service applies live
(shared/config_watch.py). `push_files` is the one path: `aiub up` at start, the dashboard's config
view and `rollback` use it too. The NATS server is found as `aiub status` finds it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from nats.js.errors import BucketNotFoundError
from nats.js.kv import KeyValue

from cli import stack_dir
from cli.status import find_nats_url
from cli.validate.checks import validate_directory
from shared import bus, config_store
from shared.config import Config, ConfigError, Environment, load_texts
from shared.config.revisions import FILES, Revision, diff, push_notes
from shared.nats_library import nats

EXIT_REFUSED = 1
EXIT_NO_BUS = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nats", default=None,
                        help="NATS URL (default: the NATS of the stack found by --state-dir's rule, else $NATS_URL)")
    parser.add_argument("--state-dir", default=None, help="where `aiub up` keeps its state (as `aiub status`)")
    actions = parser.add_subparsers(dest="action", required=True)
    push = actions.add_parser("push", help="validate a config directory and publish it as the new revision")
    push.add_argument("directory", nargs="?", default=None, help="default: $AIUB_CONFIG, else config/")
    history = actions.add_parser("history", help="every revision: number, when, from where")
    history.add_argument("--json", action="store_true")
    diff_parser = actions.add_parser("diff", help="unified diff of two revisions' files "
                                                   "(none: previous to current; one: it to current)")
    diff_parser.add_argument("revisions", nargs="*", type=int, metavar="REV")
    rollback = actions.add_parser("rollback", help="publish revision REV's files as a new revision")
    rollback.add_argument("revision", type=int, metavar="REV")
    show = actions.add_parser("show", help="one revision's files (default: the current one)")
    show.add_argument("revision", nargs="?", type=int, metavar="REV")


def read_directory(directory: Path) -> dict[str, str]:
    """The config files' texts; an absent file is not a key (validation says which are required)."""
    return {name: (directory / name).read_text(encoding="utf-8") for name in FILES if (directory / name).exists()}


def refusals(texts: Mapping[str, str], label: str, environ: Mapping[str, str], out: TextIO) -> bool:
    """Print what `aiub validate` says of `texts`; True when there is an error (the push is refused)."""
    problems = validate_directory({name: texts.get(name) for name in FILES}, environ, label)
    errors = [p for p in problems if p.severity == "error"]
    for problem in errors + [p for p in problems if p.severity == "warning"]:
        print(problem, file=out)
    if errors:
        return True
    try:
        load_texts(texts, label, environ)
    except ConfigError as e:  # the loader has the final word, as in `aiub validate`
        print(f"error: {e}", file=out)
        return True
    return False


async def push_files(nats_url: str, texts: Mapping[str, str], source: str, label: str,
                     environ: Mapping[str, str], out: TextIO = sys.stdout) -> int:
    """Validate `texts`, then publish them as the next revision. 0 published (or already current),
    1 refused (nothing published), 2 the bus could not be reached."""
    if refusals(texts, label, environ, out):
        print("refused: nothing published; the running revision stays", file=out)
        return EXIT_REFUSED
    try:
        nc = await bus.connect_once(nats_url, 3)
    except Exception as e:
        print(f"cannot reach NATS at {nats_url}: {e!r}", file=out)
        return EXIT_NO_BUS
    try:
        kv = await config_store.open_bucket(nc.jetstream())
        running, _ = await config_store.current(kv)
        revision, new = await config_store.publish(kv, dict(texts), source)
    except nats.errors.MaxPayloadError:
        size = sum(len(text.encode()) for text in texts.values())
        print(f"refused: these files ({size / 1e6:.1f} MB) do not fit one message on this bus (NATS max_payload "
              f"{nc.max_payload / 1e6:.1f} MB); nothing published, the running revision stays", file=out)
        return EXIT_REFUSED
    except (nats.errors.Error, TimeoutError, OSError) as e:
        print(f"cannot publish to NATS at {nats_url}: {e!r}", file=out)
        return EXIT_NO_BUS
    finally:
        await nc.close()
    if not new:
        print(f"unchanged: revision {revision.number} already holds these files", file=out)
        return 0
    for note in push_notes(_loaded(running, environ), load_texts(texts, label, environ)):
        print(f"note: {note}", file=out)
    print(f"published revision {revision.number} ({source}); every service applies it within a second", file=out)
    return 0


def push_directory(nats_url: str, directory: Path, source: str, environ: Mapping[str, str],
                   out: TextIO = sys.stdout) -> int:
    """`push_files` of a config directory, for callers outside an event loop (`aiub up`)."""
    if not directory.is_dir():
        print(f"{directory}: not a config directory (a LiteLLM file is converted with `aiub import-litellm`)",
              file=out)
        return EXIT_REFUSED
    return asyncio.run(push_files(nats_url, read_directory(directory), source, str(directory), environ, out))


def main(args: argparse.Namespace, environ: Mapping[str, str], environment: Environment) -> int:
    located = stack_dir.locate(args.state_dir, environment.state_dir,
                               stack_dir.pointer_file(environment.xdg_state_home, environment.home))
    url = find_nats_url(args.nats, located.state_dir, environment.nats_url)
    if url is None:
        print(stack_dir.no_stack_found("aiub config", located), file=sys.stderr)
        return EXIT_NO_BUS
    if args.action == "push":
        directory = Path(args.directory or environ.get("AIUB_CONFIG") or "config")
        return push_directory(url, directory, f"aiub config push {directory}", environ)
    try:
        return asyncio.run(_read_action(args, url, environ))
    except BucketNotFoundError:
        print("no config revisions yet: `aiub config push DIR` (or `aiub up`) publishes the first", file=sys.stderr)
        return 1
    except (OSError, TimeoutError, nats.errors.Error) as e:
        print(f"aiub config: cannot reach NATS at {url}: {e!r}", file=sys.stderr)
        return EXIT_NO_BUS


async def _read_action(args: argparse.Namespace, url: str, environ: Mapping[str, str]) -> int:
    nc = await bus.connect_once(url, 3)
    try:
        kv = await config_store.open_bucket(nc.jetstream(), create=False)
        running, _ = await config_store.current(kv)
        if args.action == "history":
            print(render_history(await config_store.history(kv), running, args.json))
            return 0
        if args.action == "diff":
            return await _diff(kv, args.revisions, running)
        # `rollback 0` names revision 0, which does not exist: not "the current one" as no number does.
        number = args.revision if args.revision is not None else (running.number if running else 0)
        revision = await config_store.revision(kv, number)
    finally:
        await nc.close()
    if revision is None:
        print(f"aiub config: no revision {number}", file=sys.stderr)
        return 1
    if args.action == "show":
        for name, text in revision.files.items():
            print(f"# {name} (revision {revision.number})\n{text}", end="" if text.endswith("\n") else "\n")
        return 0
    return await push_files(url, revision.files, f"rollback to {revision.number}", f"revision {revision.number}",
                            environ)


async def _diff(kv: KeyValue, numbers: list[int], running: Revision | None) -> int:
    if running is None or len(numbers) > 2:
        print("aiub config diff: no revisions yet" if running is None else "aiub config diff: at most two revisions",
              file=sys.stderr)
        return 1
    old: Revision | None
    new: Revision | None
    if not numbers:
        old, new = await config_store.revision(kv, running.number - 1), running
    else:
        old = await config_store.revision(kv, numbers[0])
        new = running if len(numbers) == 1 else await config_store.revision(kv, numbers[1])
    for number, found in zip(numbers, (old, new), strict=False):
        if found is None:
            print(f"aiub config diff: no revision {number}", file=sys.stderr)
            return 1
    assert new is not None
    sys.stdout.write(diff(old, new) or "(no difference)\n")
    return 0


def render_history(revisions: list[Revision], running: Revision | None, as_json: bool = False) -> str:
    if as_json:
        return json.dumps([{"revision": r.number, "pushed_at": r.pushed_at, "source": r.source,
                            "current": running is not None and r.number == running.number,
                            "files": sorted(r.files)} for r in revisions], indent=2)
    if not revisions:
        return "no config revisions yet"
    lines = [f"{'REV':>5}  {'PUSHED (UTC)':<20} SOURCE"]
    for r in revisions:
        mark = "*" if running is not None and r.number == running.number else " "
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(r.pushed_at))
        lines.append(f"{r.number:>4}{mark}  {when:<20} {r.source}")
    lines.append("* the current revision")
    return "\n".join(lines)


def _loaded(revision: Revision | None, environ: Mapping[str, str]) -> Config | None:
    if revision is None:
        return None
    try:
        return load_texts(revision.files, f"revision {revision.number}", environ)
    except ConfigError:
        return None
