"""The first half of `aiub validate`: YAML, `${VAR}` references and every key against the models.

Pure: texts and an environment in, partial typed config and `Problem`s out. `load_config`
stops at the first bad file; this keeps going, so one run lists everything: a bad provider
entry is reported and left out, the rest are still checked against each other
(cli/validate/checks.py). Every problem names the file, the key path and a fix.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from shared.config import ModelMappingsFile, ProviderSpec, RuntimeFile
from shared.config import expand_env as config_expand_env
from shared.subjects import InvalidSubjectToken, token

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Problem:
    file: str
    path: str
    message: str
    fix: str
    severity: Severity = "error"

    def __str__(self) -> str:
        return f"{self.severity}: {self.file}: {self.path}: {self.message}\n    fix: {self.fix}"


@dataclass
class Parsed:
    """What survived the structural checks: enough to cross-check the rest."""

    providers: dict[str, ProviderSpec]
    provider_names: set[str]  # every key in providers.yaml, valid or not: no cascade of "unknown provider"
    mappings: ModelMappingsFile
    runtime: RuntimeFile | None


class _Loader(yaml.SafeLoader):
    """safe_load keeps the last of two equal keys without a word: record them instead."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[object, int, int]] = []

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:
                continue
            if first != key_node.start_mark.line + 1:
                self.duplicates.append((key, first, key_node.start_mark.line + 1))
        return super().construct_mapping(node, deep)


def parse_yaml(file: str, text: str, problems: list[Problem]) -> Any:
    try:
        loader = _Loader(text)  # the reader refuses control characters (a NUL...) here, before parsing
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        problems.append(Problem(file, f"line {line}", f"not valid YAML: character #x{e.character:04x}: {e.reason}",
                                "remove it: YAML text holds no control characters but tab and newline"))
        return None
    try:
        data = loader.get_single_data()
    except yaml.YAMLError as e:
        problems.append(_syntax_error(file, e))
        return None
    finally:
        loader.dispose()
    for key, first, again in loader.duplicates:
        problems.append(Problem(file, f"line {again}", f"key {key!r} already appears on line {first}; YAML keeps "
                                "only the last one", "merge the two entries into one"))
    return {} if data is None else data


def _syntax_error(file: str, e: yaml.YAMLError) -> Problem:
    """Where the parser noticed (`problem_mark`) is often the line after the mistake: a key
    missing its ':' is noticed on the next line. The construct it was reading (`context_mark`)
    starts at the mistake, so that line leads and the other is said too."""
    def at(mark: Any) -> str:
        return f"line {mark.line + 1}, column {mark.column + 1}"

    noticed, started = getattr(e, "problem_mark", None), getattr(e, "context_mark", None)
    message = f"not valid YAML: {getattr(e, 'problem', None) or e}"
    if started is not None and noticed is not None and started.line != noticed.line:
        message += f" ({getattr(e, 'context', None) or 'reading an entry'} that starts here; noticed at {at(noticed)})"
        noticed = started
    return Problem(file, at(noticed) if noticed is not None else "(file)", message,
                   "fix the syntax at that line (indentation, a missing ':' or quote)")


UNSET_VARIABLE = "environment variable"


def expand_env(value: Any, environ: Mapping[str, str], file: str, problems: list[Problem]) -> Any:
    """`${NAME}` / `${NAME:-default}` as load_config does, but an unset variable is a problem, not an exception."""
    def report(where: str, name: str) -> str:
        problems.append(Problem(file, where, f"{UNSET_VARIABLE} {name} is not set",
                                f"export {name}=..., or write ${{{name}:-default}}"))
        return ""

    return config_expand_env(value, environ, report)


def structure(file: str, model: type[BaseModel], data: Any, problems: list[Problem],
              prefix: tuple[str | int, ...] = ()) -> Any:
    """`model` validated from `data`, or None with one problem per error."""
    try:
        return model.model_validate(data)
    except ValidationError as e:
        for item in e.errors():
            problems.append(_problem(file, model, prefix, item))
        return None


def key_path(loc: tuple[str | int, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _problem(file: str, model: type[BaseModel], prefix: tuple[str | int, ...], item: ErrorDetails) -> Problem:
    loc, kind, ctx = tuple(item["loc"]), item["type"], item.get("ctx") or {}
    message = item["msg"]
    if kind == "extra_forbidden":
        parent = _model_at(model, loc[:-1])
        allowed = sorted(parent.model_fields) if parent else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        message = "unknown key (not allowed here)"
        fix = f"did you mean {close[0]!r}?" if close else "remove it, or move it where it belongs"
        if allowed:
            fix += f" (allowed here: {', '.join(allowed)})"
    elif kind == "missing":
        fix = f"add {loc[-1]!r}"
    elif kind == "literal_error":
        fix = f"use one of {ctx.get('expected')}"
    elif loc and loc[-1] == "base_url":
        fix = "write the full URL with its scheme, e.g. http://127.0.0.1:11434"
    elif "gt" in ctx or "ge" in ctx:
        fix = f"use a number {'above' if 'gt' in ctx else 'of at least'} {ctx.get('gt', ctx.get('ge'))}"
    elif kind.endswith(("_type", "_parsing")):
        fix = "use a value of the expected type (see the message)"
    else:
        fix = "change the value as the message says"
    return Problem(file, key_path(prefix + loc), message, fix)


def _model_at(model: type[BaseModel], loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model class that the key at `loc` lives in (for the list of allowed keys)."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(str(part))
            current = field.annotation if field else None
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        elif get_origin(current) in (tuple, list):
            current = get_args(current)[0]
        else:
            return None
    current = _unwrap(current)
    return current if isinstance(current, type) and issubclass(current, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        return next((a for a in get_args(annotation) if a is not type(None)), None)
    return annotation


def parse_documents(docs: Mapping[str, Any], files: Mapping[str, str], problems: list[Problem]) -> Parsed:
    """Structure-check the three documents (already env-expanded), keeping every part that is valid."""
    providers: dict[str, ProviderSpec] = {}
    names: set[str] = set()
    raw = docs.get("providers")
    file = files["providers"]
    if isinstance(raw, dict):
        for key in raw:
            if key != "providers":
                problems.append(Problem(file, str(key), "unknown key (not allowed here)",
                                        "providers.yaml holds one key, `providers`: move this entry under it"))
        entries = raw.get("providers")
        if not isinstance(entries, dict):
            problems.append(Problem(file, "providers", "missing or not a mapping of provider key → settings",
                                    "write `providers:` followed by one entry per provider"))
            entries = {}
        for name, entry in entries.items():
            names.add(str(name))
            try:
                token(str(name))
            except InvalidSubjectToken:
                problems.append(Problem(file, f"providers.{name}", "a provider key may not contain '.', '*', '>' "
                                        "or whitespace (it names a NATS subject)", "rename it, e.g. with '_'"))
                continue
            before = len(problems)
            spec = structure(file, ProviderSpec, entry or {}, problems, ("providers", str(name)))
            if spec is None and isinstance(entry, dict):
                # Without its bad keys the entry may still be checkable against the rest (URL, API key).
                bad = {p.path.split(".")[2].split("[")[0] for p in problems[before:] if p.path.count(".") >= 2}
                spec = _lenient(ProviderSpec, {k: v for k, v in entry.items() if k not in bad})
            if spec is not None:
                providers[str(name)] = spec
    elif raw is not None:
        problems.append(Problem(file, "(top level)", "must be a mapping", "start the file with `providers:`"))

    raw = docs.get("mappings") or {}
    file = files["mappings"]
    mappings = structure(file, ModelMappingsFile, raw, problems)
    if mappings is None:
        good: dict[str, Any] = {}
        if isinstance(raw, dict):
            for section, value in raw.items():
                if section in ModelMappingsFile.model_fields and _valid(ModelMappingsFile, {section: value}):
                    good[section] = value
        mappings = ModelMappingsFile.model_validate(good)
    runtime = None
    if docs.get("runtime") is not None:
        runtime = structure(files["runtime"], RuntimeFile, docs["runtime"], problems)
    return Parsed(providers, names, mappings, runtime)


def _valid(model: type[BaseModel], data: Any) -> bool:
    return _lenient(model, data) is not None


def _lenient(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError:
        return None
