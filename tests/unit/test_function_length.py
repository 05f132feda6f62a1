"""No function of cli/, services/ or shared/ runs past 60 lines, from its `def` to its last line
(docstring and comments included): a longer one does more than one thing and is where the
next change goes wrong. Split it; do not raise the limit."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("cli", "services", "shared")
LIMIT = 60


def long_functions(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            if length > LIMIT:
                found.append(f"{node.name} at line {node.lineno}: {length} lines")
    return found


def test_no_function_is_longer_than_the_limit() -> None:
    too_long = [f"{path.relative_to(ROOT)}: {found}" for package in PACKAGES
                for path in sorted((ROOT / package).rglob("*.py")) for found in long_functions(path)]
    assert not too_long, "\n".join(too_long)


def test_the_check_sees_a_long_function(tmp_path: Path) -> None:
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    module = tmp_path / "long.py"
    module.write_text(f"def short():\n    pass\n\n\ndef long():\n{body}\n")
    assert long_functions(module) == [f"long at line 5: {LIMIT + 1} lines"]
