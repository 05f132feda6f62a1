"""An Anthropic Messages request (`POST /v1/messages`) said as an OpenAI chat request. Pure.

The inverse of services/workers/adapters/anthropic_request.py. Mapping:
- `system` (a string, or text blocks) → a leading `system` message;
- a user turn's blocks: `text` and `image` (`base64` → a data URL, `url` → the URL) become one
  user message of content parts; each `tool_result` becomes a `tool` message (its text; an
  `is_error` result says so first) placed before the turn's other blocks, as OpenAI requires
  tool answers right after the assistant's calls; images inside a tool result join the user
  message that follows;
- an assistant turn's `text` → content, `tool_use` → `tool_calls` (input as JSON arguments);
  `thinking`/`redacted_thinking` blocks of earlier turns are dropped (no backend reads them back);
- `max_tokens` (required, as Anthropic requires it), `stop_sequences` → `stop`, `temperature`,
  `top_p`, `top_k` (vLLM, llama.cpp and Ollama read it), `metadata.user_id` → `user`;
- `tools` → function tools (`input_schema` → `parameters`); `tool_choice` auto/any/tool/none →
  auto/required/named/none, `disable_parallel_tool_use` → `parallel_tool_calls: false`;
- a stream asks for usage (`stream_options.include_usage`): `message_delta` reports it.
Anything Anthropic-only (`thinking`, `cache_control`, `service_tier`) has no OpenAI word: the
client's body travels too (`native`), for a provider that speaks Messages itself.
A malformed field is a BadRequest whose `param` is Anthropic's dotted path (`messages.0.content.1`).
"""

from __future__ import annotations

from typing import Any

import msgspec

from services.gateway.dialects import Translated
from services.gateway.validation import decode_object
from shared.errors import BadRequest

_encode = msgspec.json.encode
_CHARS_PER_TOKEN = 4  # the gateway's usual estimate (usage_limits): only for message_start


def _fail(message: str, param: str) -> BadRequest:
    return BadRequest(f"{param}: {message}", param=param)


def _text(block: dict[str, Any], where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise _fail("a text block needs a string 'text'", where)
    return text


def _image(block: dict[str, Any], where: str) -> dict[str, Any]:
    source = block.get("source")
    if not isinstance(source, dict):
        raise _fail("an image block needs a 'source' object", f"{where}.source")
    if source.get("type") == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or not isinstance(data, str) or not data:
            raise _fail("a base64 image needs 'media_type' and 'data'", f"{where}.source")
        return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}
    if source.get("type") == "url" and isinstance(source.get("url"), str) and source["url"]:
        return {"type": "image_url", "image_url": {"url": source["url"]}}
    raise _fail("an image source is {'type': 'base64', 'media_type', 'data'} or {'type': 'url', 'url'}",
                f"{where}.source")


def _blocks(content: object, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _fail("must be a string or an array of content blocks", where)
    for j, block in enumerate(content):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise _fail("a content block is an object with a 'type'", f"{where}.{j}")
    return content


def _tool_result(block: dict[str, Any], where: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The tool message, and the images the result held (for the user message that follows)."""
    call_id = block.get("tool_use_id")
    if not isinstance(call_id, str) or not call_id:
        raise _fail("a tool_result needs its 'tool_use_id'", f"{where}.tool_use_id")
    texts: list[str] = []
    images: list[dict[str, Any]] = []
    content = block.get("content")
    if content is not None:
        for k, part in enumerate(_blocks(content, f"{where}.content")):
            if part["type"] == "text":
                texts.append(_text(part, f"{where}.content.{k}"))
            elif part["type"] == "image":
                images.append(_image(part, f"{where}.content.{k}"))
            else:
                raise _fail(f"a tool_result holds text and image blocks, not {part['type']!r}",
                            f"{where}.content.{k}")
    text = "\n".join(texts)
    if block.get("is_error") is True:
        text = f"Error: {text}" if text else "Error"
    return {"role": "tool", "tool_call_id": call_id, "content": text}, images


def _user(content: object, where: str) -> list[dict[str, Any]]:
    tools: list[dict[str, Any]] = []
    parts: list[dict[str, Any]] = []
    if isinstance(content, str):
        return [{"role": "user", "content": content}]
    for j, block in enumerate(_blocks(content, where)):
        at = f"{where}.{j}"
        match block["type"]:
            case "text":
                parts.append({"type": "text", "text": _text(block, at)})
            case "image":
                parts.append(_image(block, at))
            case "tool_result":
                message, images = _tool_result(block, at)
                tools.append(message)
                parts.extend(images)
            case other:
                raise _fail(f"content blocks of type {other!r} are not supported here (text, image, "
                            "tool_result)", at)
    if parts and all(p["type"] == "text" for p in parts):
        return [*tools, {"role": "user", "content": "".join(p["text"] for p in parts)}]
    return [*tools, {"role": "user", "content": parts}] if parts else tools


def _assistant(content: object, where: str) -> dict[str, Any]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content}
    texts: list[str] = []
    calls: list[dict[str, Any]] = []
    for j, block in enumerate(_blocks(content, where)):
        at = f"{where}.{j}"
        match block["type"]:
            case "text":
                texts.append(_text(block, at))
            case "tool_use":
                call_id, name = block.get("id"), block.get("name")
                if not isinstance(call_id, str) or not isinstance(name, str) or not call_id or not name:
                    raise _fail("a tool_use needs 'id' and 'name'", at)
                arguments = block.get("input", {})
                if not isinstance(arguments, dict):
                    raise _fail("a tool_use's 'input' is an object", f"{at}.input")
                calls.append({"id": call_id, "type": "function",
                              "function": {"name": name, "arguments": _encode(arguments).decode()}})
            case "thinking" | "redacted_thinking":
                pass
            case other:
                raise _fail(f"content blocks of type {other!r} are not supported here (text, tool_use, thinking)",
                            at)
    message: dict[str, Any] = {"role": "assistant", "content": "".join(texts) if texts or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _system(system: object) -> str | None:
    if system is None:
        return None
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise _fail("must be a string or an array of text blocks", "system")
    texts = []
    for i, block in enumerate(system):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise _fail("the system prompt holds text blocks", f"system.{i}")
        texts.append(_text(block, f"system.{i}"))
    return "\n\n".join(texts)


def _tools(tools: object) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _fail("must be an array", "tools")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or not isinstance(tool.get("name"), str) or not tool["name"]:
            raise _fail("a tool is an object with a 'name'", f"tools.{i}")
        if tool.get("type") not in (None, "custom"):
            raise _fail(f"server tools ({tool['type']!r}) are not supported: only client tools with an input_schema",
                        f"tools.{i}.type")
        schema = tool.get("input_schema")
        if not isinstance(schema, dict):
            raise _fail("'input_schema' is required and must be an object", f"tools.{i}.input_schema")
        function: dict[str, Any] = {"name": tool["name"], "parameters": schema}
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: object, body: dict[str, Any]) -> None:
    if not isinstance(choice, dict):
        raise _fail("must be an object with a 'type'", "tool_choice")
    match choice.get("type"):
        case "auto":
            body["tool_choice"] = "auto"
        case "any":
            body["tool_choice"] = "required"
        case "none":
            body["tool_choice"] = "none"
        case "tool" if isinstance(choice.get("name"), str) and choice["name"]:
            body["tool_choice"] = {"type": "function", "function": {"name": choice["name"]}}
        case _:
            raise _fail("'type' is one of auto, any, tool (with a 'name') or none", "tool_choice")
    if choice.get("disable_parallel_tool_use") is True:
        body["parallel_tool_calls"] = False


def _number(body: dict[str, Any], name: str, integer: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        return None
    allowed = int if integer else int | float
    if isinstance(value, bool) or not isinstance(value, allowed):
        raise _fail(f"must be {'an integer' if integer else 'a number'}", name)
    return value


def conversation(request: dict[str, Any]) -> list[dict[str, Any]]:
    """The OpenAI messages of an Anthropic request's `system` and `messages` (count_tokens reads it too)."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _fail("Field required: a non-empty array" if messages is None else "must be a non-empty array",
                    "messages")
    out: list[dict[str, Any]] = []
    system = _system(request.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise _fail("a message is an object with 'role' and 'content'", where)
        role = message.get("role")
        if "content" not in message:
            raise _fail("Field required", f"{where}.content")
        if role == "user":
            out.extend(_user(message["content"], f"{where}.content"))
        elif role == "assistant":
            out.append(_assistant(message["content"], f"{where}.content"))
        else:
            raise _fail(f"'role' is 'user' or 'assistant', not {role!r} (a system prompt is the top-level "
                        "'system')", f"{where}.role")
    return out


def translate(raw: bytes) -> Translated:
    request = decode_object(raw)
    model = request.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _fail("Field required: a non-empty string", "model")
    max_tokens = request.get("max_tokens")
    if max_tokens is None:
        raise _fail("Field required", "max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise _fail("must be an integer greater than 0", "max_tokens")
    stream = request.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise _fail("must be a boolean", "stream")
    body: dict[str, Any] = {"model": model, "messages": conversation(request), "max_tokens": max_tokens}
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    stops = request.get("stop_sequences")
    if stops is not None:
        if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
            raise _fail("must be an array of strings", "stop_sequences")
        if stops:
            body["stop"] = stops
    for name in ("temperature", "top_p"):
        if (value := _number(request, name)) is not None:
            body[name] = value
    if (top_k := _number(request, "top_k", integer=True)) is not None:
        body["top_k"] = top_k
    metadata = request.get("metadata")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise _fail("must be an object", "metadata")
        if isinstance(metadata.get("user_id"), str):
            body["user"] = metadata["user_id"]
    if request.get("tools") is not None:
        tools = _tools(request["tools"])
        if tools:
            body["tools"] = tools
    if request.get("tool_choice") is not None:
        _tool_choice(request["tool_choice"], body)
        if "tools" not in body:  # OpenAI refuses a tool_choice without tools; Anthropic does not
            body.pop("tool_choice", None)
            body.pop("parallel_tool_calls", None)
    return Translated(kind="chat", body=body, native=request, native_dialect="anthropic",
                      notes={"model": model, "stops": tuple(stops or ()),
                             "estimated_input_tokens": max(1, len(raw) // _CHARS_PER_TOKEN)})
