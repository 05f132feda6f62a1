"""`aiub validate` and `aiub import-litellm`: the file reading and printing around the pure checks.

The checks are services/validate.py; the conversion is shared/litellm_import.py.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

import yaml

from services.validate import validate_directory, validate_litellm
from shared.config import ConfigError, default_config_dir, load_config
from shared.litellm_import import LiteLLMImportError, import_litellm

FILES = ("providers.yaml", "model-mappings.yaml", "aiub.yaml")


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None


def run_validate(config: str | None, environ: Mapping[str, str], out: TextIO = sys.stdout) -> int:
    """Print every problem; 1 if any is an error, 2 if there is nothing to read."""
    root = Path(config) if config else default_config_dir()
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
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    for problem in errors + warnings:
        print(problem, file=out)
    failed = len(errors)
    if not errors:
        try:
            loaded = load_config(root)
        except ConfigError as e:  # the loader has the final word: a check validate lacks must not pass
            print(f"error: {e}", file=out)
            failed = 1
        else:
            print(f"config OK: {len(loaded.providers)} providers, {len(loaded.public_models())} models", file=out)
    print(f"{failed} error{'s' * (failed != 1)}, {len(warnings)} warning{'s' * (len(warnings) != 1)}", file=out)
    return 1 if failed else 0


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # a reader should see every value where it applies, not &id001 / *id001


def _dump(header: str, document: dict[str, Any]) -> str:
    return header + yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


def run_import(source: str, out_dir: str, force: bool, out: TextIO = sys.stdout) -> int:
    """Write providers.yaml, model-mappings.yaml (and aiub.yaml if any runtime setting maps) to `out_dir`."""
    path, target = Path(source), Path(out_dir)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        imported = import_litellm(data)
        load_config(path)  # the same import, validated by our models: write nothing that would not load
    except (OSError, UnicodeDecodeError, yaml.YAMLError, LiteLLMImportError, ConfigError) as e:
        print(f"aiub import-litellm: {path}: {e}", file=out)
        return 2
    writes = {"providers.yaml": imported.providers, "model-mappings.yaml": imported.mappings}
    if imported.runtime:
        writes["aiub.yaml"] = imported.runtime
    existing = [name for name in writes if (target / name).exists()]
    if existing and not force:
        print(f"aiub import-litellm: {target} already has {', '.join(existing)} (--force overwrites)", file=out)
        return 2
    notes = "".join(f"#   {note}\n" for note in imported.notes)
    header = (f"# Imported from {path} by `aiub import-litellm`.\n"
              + (f"# LiteLLM settings approximated or not imported:\n{notes}" if notes else ""))
    target.mkdir(parents=True, exist_ok=True)
    for name, document in writes.items():
        (target / name).write_text(_dump(header, document), encoding="utf-8")
    for note in imported.notes:
        print(f"note: {note}", file=out)
    providers = imported.providers["providers"]
    # Counted as `aiub validate` counts them: names a client may ask for, not provider entries.
    names = {*imported.mappings.get("exact_matches", {}), *(m for p in providers.values() for m in p["models"])}
    print(f"wrote {', '.join(writes)} to {target}: {len(providers)} providers, {len(names)} models; "
          f"check with `aiub validate --config {target}`", file=out)
    return 0
