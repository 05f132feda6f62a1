"""`aiub import-litellm`: our config files written from a LiteLLM proxy config.

The conversion is shared/config/litellm_import.py; this writes its result and says what it approximated.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import yaml

from shared.config import ConfigError, load_config
from shared.config.litellm_import import LiteLLMImportError, import_litellm


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
