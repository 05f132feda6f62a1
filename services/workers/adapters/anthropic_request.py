"""An OpenAI chat request said in Anthropic's Messages API (`POST /v1/messages`).

Mapping:
- `system` and `developer` messages, wherever they are, join (blank line between) into the
  top-level `system`; Anthropic has no system role in `messages`.
- `user`/`assistant` text stays text; `image_url` parts become `image` blocks (`base64` for
  data URLs, `url` otherwise); an assistant's `tool_calls` become `tool_use` blocks whose
  `input` is the parsed arguments; a `tool` message becomes a `tool_result` block in a user
  turn. Consecutive turns of one role merge, since Anthropic requires them to alternate.
- `max_tokens` is required by Anthropic: `max_completion_tokens`, else `max_tokens`, else
  `DEFAULT_MAX_TOKENS`.
- `stop` → `stop_sequences`; `temperature` (Anthropic's range is 0–1, OpenAI's 0–2: clamped),
  `top_p`, and the non-OpenAI `top_k` pass; `user` → `metadata.user_id`.
- `tools` → `{name, description, input_schema}`; `tool_choice` auto/required/none/named →
  `{type: auto|any|none|tool}`; `parallel_tool_calls: false` → `disable_parallel_tool_use`.
- `n` > 1 and `response_format` other than text have no equivalent: 400, not a silent change.
"""

from __future__ import annotations

from typing import Any

from services.workers.adapters.base import InvalidRequest
from services.workers.adapters.openai_request import (
    ImagePart,
    Part,
    TextPart,
    content_parts,
    max_tokens,
    require_single_choice,
    stop_list,
    text_of,
    tool_arguments,
)

DEFAULT_MAX_TOKENS = 4096
API_VERSION = "2023-06-01"


def _blocks(parts: list[Part]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in parts:
        if isinstance(part, TextPart):
            if part.text:
                blocks.append({"type": "text", "text": part.text})
        elif part.data is not None:
            blocks.append({"type": "image", "source": {"type": "base64", "media_type": part.media_type or "image/png",
                                                       "data": part.data}})
        else:
            blocks.append({"type": "image", "source": {"type": "url", "url": part.url}})
    return blocks


def _turn(message: dict[str, Any], i: int) -> tuple[str, list[dict[str, Any]]]:
    role = message.get("role")
    where = f"messages[{i}]"
    parts = content_parts(message.get("content"), f"{where}.content")
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise InvalidRequest(f"{where}.tool_call_id is required for a tool message", f"{where}.tool_call_id")
        if any(isinstance(p, ImagePart) for p in parts):
            return "user", [{"type": "tool_result", "tool_use_id": call_id, "content": _blocks(parts)}]
        return "user", [{"type": "tool_result", "tool_use_id": call_id, "content": text_of(parts)}]
    if role not in ("user", "assistant"):
        raise InvalidRequest(f"{where}.role {role!r} is not supported by this provider", f"{where}.role")
    blocks = _blocks(parts)
    if role == "assistant":
        for j, call in enumerate(message.get("tool_calls") or ()):
            call_id, name, arguments = tool_arguments(call, f"{where}.tool_calls[{j}]")
            if call_id is None:
                raise InvalidRequest(f"{where}.tool_calls[{j}].id is required", f"{where}.tool_calls[{j}]")
            blocks.append({"type": "tool_use", "id": call_id, "name": name, "input": arguments})
    return role, blocks


def _conversation(messages: list[Any]) -> tuple[str | None, list[dict[str, Any]]]:
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object", f"messages[{i}]")
        if message.get("role") in ("system", "developer"):
            system.append(text_of(content_parts(message.get("content"), f"messages[{i}].content")))
            continue
        role, blocks = _turn(message, i)
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    for turn in turns:
        # A text-only turn is sent as a plain string: the form every Anthropic example uses.
        content = turn["content"]
        if len(content) == 1 and content[0]["type"] == "text":
            turn["content"] = content[0]["text"]
        elif not content:
            turn["content"] = ""
    return ("\n\n".join(system) if system else None), turns


def _tools(body: dict[str, Any]) -> list[dict[str, Any]] | None:
    tools = body.get("tools")
    if not tools:
        return None
    if not isinstance(tools, list):
        raise InvalidRequest("'tools' must be an array", "tools")
    out = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise InvalidRequest(f"tools[{i}] must be a function tool with a name", f"tools[{i}]")
        converted: dict[str, Any] = {"name": function["name"],
                                     "input_schema": function.get("parameters") or {"type": "object", "properties": {}}}
        if function.get("description"):
            converted["description"] = function["description"]
        out.append(converted)
    return out


def _tool_choice(body: dict[str, Any]) -> dict[str, Any] | None:
    choice = body.get("tool_choice")
    converted: dict[str, Any] | None
    if choice is None:
        converted = None
    elif choice == "auto":
        converted = {"type": "auto"}
    elif choice == "required":
        converted = {"type": "any"}
    elif choice == "none":
        converted = {"type": "none"}
    elif isinstance(choice, dict) and isinstance(choice.get("function"), dict) and choice["function"].get("name"):
        converted = {"type": "tool", "name": choice["function"]["name"]}
    else:
        raise InvalidRequest("'tool_choice' must be 'auto', 'required', 'none' or a named function", "tool_choice")
    if body.get("parallel_tool_calls") is False:
        converted = {**(converted or {"type": "auto"}), "disable_parallel_tool_use": True}
    return converted


def messages_body(body: dict[str, Any], backend_model: str, stream: bool) -> dict[str, Any]:
    require_single_choice(body)
    fmt = body.get("response_format")
    if fmt is not None and not (isinstance(fmt, dict) and fmt.get("type") == "text"):
        raise InvalidRequest("this provider has no JSON mode: 'response_format' is not supported", "response_format")
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("'messages' must be an array", "messages")
    system, turns = _conversation(messages)
    out: dict[str, Any] = {"model": backend_model, "max_tokens": max_tokens(body) or DEFAULT_MAX_TOKENS,
                           "messages": turns, "stream": stream}
    if system is not None:
        out["system"] = system
    stop = stop_list(body)
    if stop:
        out["stop_sequences"] = stop
    temperature = body.get("temperature")
    if isinstance(temperature, int | float) and not isinstance(temperature, bool):
        out["temperature"] = min(float(temperature), 1.0)
    for name in ("top_p", "top_k"):
        if body.get(name) is not None:
            out[name] = body[name]
    if isinstance(body.get("user"), str):
        out["metadata"] = {"user_id": body["user"]}
    tools = _tools(body)
    choice = _tool_choice(body)
    if tools:
        out["tools"] = tools
        if choice is not None:
            out["tool_choice"] = choice
    return out


def headers(api_key: str | None) -> dict[str, str]:
    out = {"anthropic-version": API_VERSION}
    if api_key:
        out["x-api-key"] = api_key
    return out
