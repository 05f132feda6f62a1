"""The tool call the fake model makes when the `tool_call` knob asks for one. Pure.

It calls the tool the request names in `tool_choice`, else the first of `tools`, with
arguments made from that tool's JSON schema, so tests can predict them: property k of type
string gets "tok{k}", integer/number gets k, boolean gets true, anything else null. The
arguments' JSON text is cut into `PIECE` character pieces, the units a stream sends.
Tools come as OpenAI and Ollama spell them (`{"type": "function", "function": {name,
parameters}}`) or as Anthropic does (`{name, input_schema}`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

PIECE = 8


@dataclass(frozen=True, slots=True)
class ToolCall:
    call_id: str
    name: str
    arguments: dict[str, Any]
    pieces: tuple[str, ...]

    @property
    def n(self) -> int:
        return len(self.pieces)

    @property
    def arguments_json(self) -> str:
        return "".join(self.pieces)


def _spec(tool: object) -> tuple[str, dict[str, Any]] | None:
    if not isinstance(tool, dict):
        return None
    nested = tool.get("function")
    function: dict[str, Any] = nested if isinstance(nested, dict) else tool
    name = function.get("name")
    schema = function.get("parameters", function.get("input_schema"))
    if not isinstance(name, str):
        return None
    return name, schema if isinstance(schema, dict) else {}


def _chosen(body: dict[str, Any]) -> str | None:
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        nested = choice.get("function")
        named: dict[str, Any] = nested if isinstance(nested, dict) else choice
        name = named.get("name")
        return name if isinstance(name, str) else None
    return None


def arguments_for(schema: dict[str, Any]) -> dict[str, Any]:
    properties = schema.get("properties")
    out: dict[str, Any] = {}
    if not isinstance(properties, dict):
        return out
    for k, (name, prop) in enumerate(properties.items()):
        kind = prop.get("type") if isinstance(prop, dict) else None
        out[name] = {"string": f"tok{k}", "integer": k, "number": k, "boolean": True}.get(kind) \
            if isinstance(kind, str) else None
    return out


def tool_call(body: dict[str, Any], rid: str) -> ToolCall | None:
    """The call to make, or None when the request offers no tool (or forbids using one)."""
    tools = body.get("tools")
    if not isinstance(tools, list) or body.get("tool_choice") in ("none", {"type": "none"}):
        return None
    specs = [s for s in (_spec(t) for t in tools) if s is not None]
    if not specs:
        return None
    wanted = _chosen(body)
    name, schema = next((s for s in specs if s[0] == wanted), specs[0])
    arguments = arguments_for(schema)
    text = orjson.dumps(arguments).decode()
    pieces = tuple(text[i:i + PIECE] for i in range(0, len(text), PIECE))
    return ToolCall("call_" + hashlib.blake2b(rid.encode(), digest_size=8).hexdigest(), name, arguments, pieces)
