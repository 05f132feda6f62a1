"""`aiub validate`: the file reading and printing around the pure checks (checks.py)."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from cli.validate.checks import validate_directory, validate_litellm
from shared.config import ConfigError, default_config_dir, load_config

FILES = ("providers.yaml", "model-mappings.yaml", "aiub.yaml")


class _NotText(Exception):
    """A config file that is not UTF-8: where, so that it can be found and fixed."""


def _read(path: Path) -> str | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise _NotText(f"{path}: line {line}: not UTF-8 text (byte 0x{data[e.start]:02x}); save it as UTF-8") from None


def run_validate(config: str | None, environ: Mapping[str, str], out: TextIO = sys.stdout) -> int:
    """Print every problem; 1 if any is an error, 2 if there is nothing to read."""
    root = Path(config) if config else default_config_dir(environ)
    try:
        if root.is_file():
            problems = validate_litellm(root.read_text(encoding="utf-8"), str(root), environ)
        elif root.is_dir():
            problems = validate_directory({name: _read(root / name) for name in FILES}, environ, str(root))
        else:
            print(f"aiub validate: {root}: no such config directory or file", file=out)
            return 2
    except (OSError, UnicodeDecodeError) as e:
        print(f"aiub validate: cannot read {root}: {e}", file=out)
        return 2
    except _NotText as e:
        print(f"aiub validate: {e}", file=out)
        return 2
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    for problem in errors + warnings:
        print(problem, file=out)
    failed = len(errors)
    if not errors:
        try:
            loaded = load_config(root, environ)
        except ConfigError as e:  # the loader has the final word: a check validate lacks must not pass
            print(f"error: {e}", file=out)
            failed = 1
        else:
            print(f"config OK: {len(loaded.providers)} providers, {len(loaded.public_models())} models", file=out)
    print(f"{failed} error{'s' * (failed != 1)}, {len(warnings)} warning{'s' * (len(warnings) != 1)}", file=out)
    return 1 if failed else 0
