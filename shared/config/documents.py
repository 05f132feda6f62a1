"""One config document read, its `${VAR}` references expanded and validated by its model; every
error names the file and the key path."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from shared.config.base import ConfigError
from shared.config.env import expand_env

_M = TypeVar("_M", bound=BaseModel)

# libyaml's parser, when PyYAML was built with it: ten times the pure-Python one, and every service
# parses each config revision at start and on each push (docs/benchmarks.md, "Start").
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_yaml(source: str | bytes) -> Any:
    """A YAML document as PyYAML's own parser reads it, by libyaml where the two agree. Text with a
    tab, and text libyaml refuses, go to PyYAML's parser: it refuses tabs that libyaml takes
    (`key:<TAB>value`), as `aiub validate` and `aiub config push` do, and its errors quote the
    offending line with a caret where libyaml's give only the position."""
    tabbed = b"\t" in source if isinstance(source, bytes) else "\t" in source
    if tabbed:
        return yaml.safe_load(source)
    try:
        return yaml.load(source, Loader=_FAST_LOADER)
    except (yaml.YAMLError, UnicodeError):
        return yaml.safe_load(source)


def expand(value: Any, path: Path, environ: Mapping[str, str]) -> Any:
    def refuse(where: str, name: str) -> str:
        raise ConfigError(f"{path}: {where}: environment variable {name} is not set (or write ${{{name}:-default}})")

    return expand_env(value, environ, refuse)


def read_yaml(path: Path, environ: Mapping[str, str]) -> Any:
    try:
        return expand(parse_yaml(path.read_bytes()) or {}, path, environ)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None


def read_yaml_text(text: str | None, path: Path, environ: Mapping[str, str]) -> Any:
    """`read_yaml` of a file's text as it was read elsewhere (a config revision on the bus)."""
    if text is None:
        raise ConfigError(f"{path}: file not found")
    try:
        return expand(parse_yaml(text) or {}, path, environ)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from None


def describe(path: Path, error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        where = ".".join(str(part) for part in item["loc"]) or "(top level)"
        message = "unknown key (not allowed here)" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"{path}: {where}: {message}")
    return "\n".join(lines)


def parse(model: type[_M], path: Path, data: Any) -> _M:
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise ConfigError(describe(path, e)) from None
