"""Editing the config directory from the dashboard: nothing is written unless all of it validates.

With a bus, saving goes through `aiub config push`'s path (cli/config_live.py): the edited texts
are validated by `aiub validate`'s checks and published as a new revision, which every service
applies live; only then are the files written too, so the directory and the bus agree.

The edited texts are written, with the untouched files, to a temporary copy of the directory
and loaded with `load_config` — the same check `aiub validate` and every service run at
start. Only when that passes are the changed files replaced, each atomically (a write to a
sibling file, then a rename), so a service starting meanwhile never reads half a file.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

from shared.config import ConfigError, load_config

FILES = ("providers.yaml", "model-mappings.yaml", "aiub.yaml")


def read_files(directory: Path) -> dict[str, str]:
    """Each config file's text; a missing optional `aiub.yaml` reads as empty."""
    out = {}
    for name in FILES:
        path = directory / name
        out[name] = path.read_text() if path.exists() else ""
    return out


def validate(directory: Path, edited: dict[str, str]) -> str | None:
    """None when the directory with `edited` texts in place loads; else every problem, by file and key."""
    with tempfile.TemporaryDirectory(prefix="aiub-config-") as scratch:
        root = Path(scratch)
        current = read_files(directory)
        for name in FILES:
            text = edited.get(name, current[name])
            if text or name != "aiub.yaml":
                (root / name).write_text(text)
        try:
            load_config(root)
        except ConfigError as e:
            return str(e).replace(str(root), str(directory))
    return None


def save(directory: Path, edited: dict[str, str]) -> list[str]:
    """Validate, then write the files whose text changed. Returns their names; raises ConfigError."""
    problem = validate(directory, edited)
    if problem is not None:
        raise ConfigError(problem)
    current = read_files(directory)
    changed = [name for name in FILES if name in edited and edited[name] != current[name]]
    for name in changed:
        target = directory / name
        fd, temporary = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(edited[name])
            if target.exists():
                os.chmod(temporary, target.stat().st_mode)  # mkstemp makes it private
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    return changed


async def publish(nats_url: str, directory: Path, edited: dict[str, str],
                  environ: Mapping[str, str]) -> tuple[bool, str]:
    """Validate, publish as a new revision, then write the changed files. (saved, what to show)."""
    problem = validate(directory, edited)
    if problem is not None:
        raise ConfigError(problem)
    from cli.config_live import EXIT_REFUSED, push_files

    current = read_files(directory)
    texts = {name: edited.get(name, current[name]) for name in FILES}
    if not texts["aiub.yaml"]:
        del texts["aiub.yaml"]
    said = io.StringIO()
    code = await push_files(nats_url, texts, "dashboard", str(directory), environ, said)
    if code == EXIT_REFUSED:
        raise ConfigError(said.getvalue().strip())
    if code != 0:
        return False, said.getvalue().strip()
    changed = save(directory, edited)
    return True, said.getvalue().strip() + (f"\nwrote {', '.join(changed)}" if changed else "")
