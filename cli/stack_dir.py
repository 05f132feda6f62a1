"""Where the running stack is: one rule for `aiub status`, `aiub dashboard` and the shell widgets.

`aiub up` writes `<state-dir>/stack.json` (its NATS URL, gateway and `/metrics` endpoints) and
records the state dir's absolute path in a per-user pointer file, `$XDG_STATE_HOME/aiub/current`
(`~/.local/state/aiub/current` without XDG_STATE_HOME), so a reader anywhere finds it. A reader
takes the first of:
  1. the state dir it was given (`--state-dir DIR`);
  2. `$AIUB_STATE_DIR`;
  3. `./.aiub`, when it holds a stack.json (a stack started in this directory);
  4. the dir the pointer file names, when it holds a stack.json.
1 and 2 are taken as given, with or without a stack.json; 3 and 4 only with one. With none, no
stack is found: a reader says so, and never asks a default URL that some other server may answer.
`wth-widgets/litellm/bin/common.sh` applies the same rule (tests/unit/test_stack_dir.py runs both).
No environment reads here: the caller passes what it read.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT = Path(".aiub")
STACK_FILE = "stack.json"


def pointer_file(xdg_state_home: str | None, home: str | None) -> Path | None:
    """`$XDG_STATE_HOME/aiub/current`, else `~/.local/state/aiub/current`; None with neither."""
    if xdg_state_home:
        return Path(xdg_state_home) / "aiub" / "current"
    if home:
        return Path(home) / ".local" / "state" / "aiub" / "current"
    return None


def pointer_from(environ: Mapping[str, str]) -> Path | None:
    return pointer_file(environ.get("XDG_STATE_HOME"), environ.get("HOME"))


@dataclass(frozen=True)
class Located:
    state_dir: Path | None  # None: no stack found
    how: str  # "--state-dir", "AIUB_STATE_DIR", "./.aiub", the pointer file's path, or "" when none

    @property
    def stack_file(self) -> Path | None:
        return None if self.state_dir is None else self.state_dir / STACK_FILE

    @property
    def found(self) -> bool:
        return self.stack_file is not None and self.stack_file.is_file()


def locate(explicit: str | Path | None, env_state_dir: str | None, pointer: Path | None,
           cwd: Path | None = None) -> Located:
    if explicit:
        return Located(Path(explicit), "--state-dir")
    if env_state_dir:
        return Located(Path(env_state_dir), "AIUB_STATE_DIR")
    here = (cwd or Path.cwd()) / DEFAULT
    if (here / STACK_FILE).is_file():
        return Located(here, "./.aiub")
    if pointer is not None:
        try:
            recorded = Path(pointer.read_text().strip())
        except OSError:
            recorded = None
        if recorded is not None and recorded.is_absolute() and (recorded / STACK_FILE).is_file():
            return Located(recorded, str(pointer))
    return Located(None, "")


def state_dir_of(explicit: str | None, environ: Mapping[str, str]) -> Path:
    """The state dir a tool that reads or writes files there uses (`aiub keys`' key file, `aiub
    logs`): the one `locate` finds, else ./.aiub, where `aiub up` puts it by default."""
    located = locate(explicit, environ.get("AIUB_STATE_DIR"), pointer_from(environ))
    return located.state_dir if located.state_dir is not None else DEFAULT


def record(state_dir: Path, pointer: Path | None) -> None:
    """`aiub up`: name this stack's state dir (absolute) in the pointer file, atomically."""
    if pointer is None:
        return
    pointer.parent.mkdir(parents=True, exist_ok=True)
    partial = pointer.with_name(f".{pointer.name}.{os.getpid()}")
    partial.write_text(f"{state_dir.resolve()}\n")
    partial.replace(pointer)


def forget(state_dir: Path, pointer: Path | None) -> None:
    """`aiub up` stopping: remove the pointer if it still names this stack (a later one keeps its own)."""
    if pointer is None:
        return
    try:
        if Path(pointer.read_text().strip()) == state_dir.resolve():
            pointer.unlink()
    except OSError:
        pass



def no_stack_found(command: str, located: Located) -> str:
    """What `aiub status` and `aiub dashboard` say when `locate` found no stack.json and no NATS URL
    was named (--nats, $NATS_URL)."""
    if located.state_dir is not None:
        where = f"no {STACK_FILE} in {located.state_dir} (named by {located.how}), and no --nats or $NATS_URL"
    else:
        where = ("no --state-dir, no $AIUB_STATE_DIR, no ./.aiub/stack.json here, no running `aiub up` recorded "
                 "its state dir, and no --nats or $NATS_URL")
    return (f"{command}: no stack found: {where}.\n"
            f"Start one with `aiub up`, or name it with --state-dir DIR or --nats URL.")
