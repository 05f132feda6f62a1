"""mypy is strict on every pure module: one that imports no nats, httpx, redis or asyncio (habit 1)
is named in pyproject.toml's strict override, so a new pure core cannot slip in loosely typed."""

from __future__ import annotations

import ast
import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The four named by habit 1, and the frameworks that do I/O for a module (HTTP servers, a terminal UI).
IO = {"nats", "httpx", "redis", "asyncio",
      "starlette", "uvicorn", "httptools", "uvloop", "textual", "prometheus_client"}


def strict_patterns() -> list[str]:
    overrides = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]["overrides"]
    return [pattern for o in overrides if o.get("strict") for pattern in o["module"]]


def imports_io(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
        if any(name.split(".")[0] in IO for name in names):
            return True
    return False


def pure_modules() -> list[str]:
    return sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                  for package in ("cli", "services", "shared") for p in (ROOT / package).rglob("*.py")
                  if p.name not in ("__init__.py", "__main__.py") and not imports_io(p))


def test_every_pure_module_is_type_checked_strictly() -> None:
    patterns = strict_patterns()
    loose = [m for m in pure_modules() if not any(fnmatch.fnmatchcase(m, p) for p in patterns)]
    assert loose == [], "add these to the strict [[tool.mypy.overrides]] in pyproject.toml"


def test_the_purity_check_sees_an_io_import(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("def f() -> None:\n    import asyncio.subprocess\n")
    (tmp_path / "b.py").write_text("from shared.sse import encode\nfrom .nats import x\n")
    assert imports_io(tmp_path / "a.py") and not imports_io(tmp_path / "b.py")
