"""`${NAME}` and `${NAME:-default}` in config values, so compose and hosts can differ by env."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def expand_env(value: Any, environ: Mapping[str, str], unset: Callable[[str, str], str], where: str = "") -> Any:
    """Every reference in the string values of `value` (nested dicts and lists) replaced.
    `unset(key path, NAME)` decides what a variable that is unset and has no default becomes,
    or raises."""
    if isinstance(value, dict):
        return {k: expand_env(v, environ, unset, f"{where}.{k}" if where else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [expand_env(v, environ, unset, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in environ:
            return environ[name]
        return unset(where, name) if default is None else default

    return _ENV_REFERENCE.sub(substitute, value)
