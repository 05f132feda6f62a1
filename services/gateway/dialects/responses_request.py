"""An OpenAI Responses request (`POST /v1/responses`) said as a chat completions request. Pure.

Mapping:
- `instructions` → a leading `system` message (never carried to the next turn, as OpenAI's);
- the earlier turn (`previous_response_id`: its input and output items, which the caller looked
  up) and then `input` become `messages`. `input` is a string (one user message) or items:
  - a message (`type: "message"` or just `role` and `content`): `user`, `assistant`, `system`,
    `developer` (said as `system`: vLLM's and Ollama's chat templates know no `developer`);
    content a string or parts: `input_text`/`output_text`/`refusal` → text, `input_image` →
    an `image_url` part (a URL or a data URL; `detail` kept);
  - `function_call` → a `tool_calls` entry of an assistant message (calls in a row, and a call
    after an assistant's text, join one message, as chat completions has them);
  - `function_call_output` → a `tool` message with its `call_id`;
  - `reasoning` items are dropped (no backend reads reasoning back).
- `tools` (function tools) → chat tools; `tool_choice` auto/none/required/{function, name};
  `parallel_tool_calls`; `max_output_tokens` → `max_tokens`; `temperature`, `top_p`;
  `text.format` json_object/json_schema → `response_format`; `reasoning.effort` →
  `reasoning_effort`; `user`/`safety_identifier` → `user`. A stream asks for usage.
- OpenAI-hosted things (web search, file search, input files, `background`, `conversation`,
  prompt templates) are a 400 naming the field. Fields that only shape OpenAI's own service
  (`include`, `truncation`, `service_tier`, `prompt_cache_key`, …) are dropped. Any other field
  goes to the backend as it came, as on the chat path (vLLM's `top_k`, the simulator's knobs).

A malformed field is a BadRequest whose `param` is the Responses path (`input[2].call_id`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from services.gateway.dialects import Translated
from services.gateway.validation import decode_object
from shared.errors import BadRequest

_ROLES = {"user": "user", "assistant": "assistant", "system": "system", "developer": "system"}
# Translated, echoed, or meaningful only to OpenAI's own service: never sent on as they are.
_HANDLED = frozenset({
    "model", "input", "instructions", "previous_response_id", "store", "stream", "tools", "tool_choice",
    "parallel_tool_calls", "max_output_tokens", "temperature", "top_p", "text", "reasoning", "user",
    "safety_identifier", "metadata", "include", "truncation", "service_tier", "prompt_cache_key",
    "prompt_cache_retention", "stream_options", "max_tool_calls", "top_logprobs", "background",
    "conversation", "prompt", "context_management"})


class _Head(msgspec.Struct):
    previous_response_id: Any = None


_head = msgspec.json.Decoder(_Head)


def _fail(message: str, param: str) -> BadRequest:
    return BadRequest(f"{param}: {message}", param=param)


def previous_id(raw: bytes) -> str | None:
    """`previous_response_id`, read without decoding the rest: the caller looks it up first."""
    try:
        value = _head.decode(raw).previous_response_id
    except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, RecursionError):
        return None  # parse() says what is wrong with the body
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise _fail("must be a response id (a string)", "previous_response_id")
    return value


# ----------------------------------------------------------------------------- input items
def _text_of(part: dict[str, Any], where: str) -> str:
    key = "refusal" if part.get("type") == "refusal" else "text"
    text = part.get(key)
    if not isinstance(text, str):
        raise _fail(f"a {part.get('type')} part needs a string '{key}'", f"{where}.{key}")
    return text


def _image(part: dict[str, Any], where: str) -> dict[str, Any]:
    url = part.get("image_url")
    if not isinstance(url, str) or not url:
        if part.get("file_id") is not None:
            raise _fail("images by file_id are not supported (aiub has no file store): send image_url, "
                        "a URL or a data URL", f"{where}.file_id")
        raise _fail("an input_image needs 'image_url' (a URL or a data URL)", f"{where}.image_url")
    image: dict[str, Any] = {"url": url}
    if isinstance(part.get("detail"), str) and part["detail"] != "auto":
        image["detail"] = part["detail"]
    return {"type": "image_url", "image_url": image}


def _parts(content: object, where: str) -> list[dict[str, Any]]:
    """A message's content as chat content parts (text and image_url)."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise _fail("must be a string or an array of content parts", where)
    out = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise _fail("a content part is an object with a 'type'", at)
        match part["type"]:
            case "input_text" | "output_text" | "text" | "refusal":
                out.append({"type": "text", "text": _text_of(part, at)})
            case "input_image":
                out.append(_image(part, at))
            case "input_file" | "input_audio":
                raise _fail(f"{part['type']} parts are not supported: send text, or images as input_image",
                            f"{at}.type")
            case other:
                raise _fail(f"content parts of type {other!r} are not supported (input_text, input_image, "
                            "output_text, refusal)", f"{at}.type")
    return out


def _message(item: dict[str, Any], where: str) -> dict[str, Any]:
    asked = item.get("role")
    role = _ROLES.get(asked) if isinstance(asked, str) else None
    if role is None:
        raise _fail(f"'role' is one of user, assistant, system, developer; not {item.get('role')!r}",
                    f"{where}.role")
    if "content" not in item:
        raise _fail("a message needs 'content'", f"{where}.content")
    parts = _parts(item["content"], f"{where}.content")
    texts = [p["text"] for p in parts if p["type"] == "text"]
    if role != "user":
        if len(texts) != len(parts):
            raise _fail(f"images go in user messages, not {item['role']} ones", f"{where}.content")
        return {"role": role, "content": "".join(texts)}
    if len(parts) == 1 and parts[0]["type"] == "text":
        return {"role": "user", "content": parts[0]["text"]}
    return {"role": "user", "content": parts}


def _string(item: dict[str, Any], name: str, where: str) -> str:
    value = item.get(name)
    if not isinstance(value, str) or not value:
        raise _fail(f"a {item.get('type')} item needs a non-empty string '{name}'", f"{where}.{name}")
    return value


def _call(item: dict[str, Any], where: str) -> dict[str, Any]:
    arguments = item.get("arguments", "")
    if not isinstance(arguments, str):
        raise _fail("'arguments' is a JSON string", f"{where}.arguments")
    return {"id": _string(item, "call_id", where), "type": "function",
            "function": {"name": _string(item, "name", where), "arguments": arguments}}


def _call_output(item: dict[str, Any], where: str) -> dict[str, Any]:
    output = item.get("output")
    if isinstance(output, list):
        parts = _parts(output, f"{where}.output")
        if any(p["type"] != "text" for p in parts):
            raise _fail("a function_call_output holds text (images are not supported here)", f"{where}.output")
        output = "".join(p["text"] for p in parts)
    if not isinstance(output, str):
        raise _fail("'output' is a string or an array of input_text parts", f"{where}.output")
    return {"role": "tool", "tool_call_id": _string(item, "call_id", where), "content": output}


def messages(items: Sequence[object], where: str = "input") -> list[dict[str, Any]]:
    """Responses input items (or a stored turn's output items) as chat messages, in order."""
    out: list[dict[str, Any]] = []
    for i, item in enumerate(items):
        at = f"{where}[{i}]"
        if not isinstance(item, dict):
            raise _fail("an input item is an object", at)
        kind = item.get("type", "message")
        match kind:
            case "message":
                out.append(_message(item, at))
            case "function_call":
                call = _call(item, at)
                last = out[-1] if out else None
                if last is not None and last["role"] == "assistant":
                    if not last.get("tool_calls") and last["content"] == "":
                        last["content"] = None
                    last.setdefault("tool_calls", []).append(call)
                else:
                    out.append({"role": "assistant", "content": None, "tool_calls": [call]})
            case "function_call_output":
                out.append(_call_output(item, at))
            case "reasoning":
                pass
            case "item_reference":
                raise _fail("item references are not supported: send the item itself, or previous_response_id",
                            f"{at}.type")
            case other:
                raise _fail(f"input items of type {other!r} are not supported (message, function_call, "
                            "function_call_output, reasoning)", f"{at}.type")
    return out


def input_items(value: object) -> list[dict[str, Any]]:
    """`input` as a list of items, as a stored response keeps it (a string is one user message)."""
    if isinstance(value, str):
        return [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": value}]}]
    if not isinstance(value, list):
        raise _fail("'input' is required: a string or an array of input items", "input")
    return [{"type": "message", **item} if isinstance(item, dict) and "type" not in item else item
            for item in value]


def first_image(items: Sequence[object]) -> str | None:
    """Where the first input_image of `items` is (`input[1].content[0]`), for a model that takes none."""
    for i, item in enumerate(items):
        content = item.get("content") if isinstance(item, dict) else None
        for j, part in enumerate(content if isinstance(content, list) else ()):
            if isinstance(part, dict) and part.get("type") == "input_image":
                return f"input[{i}].content[{j}]"
    return None


# ----------------------------------------------------------------------------- options
def _tools(tools: object) -> list[dict[str, Any]]:
    if not isinstance(tools, list):
        raise _fail("must be an array", "tools")
    out = []
    for i, tool in enumerate(tools):
        at = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise _fail("a tool is an object", at)
        if tool.get("type") != "function":
            raise _fail(f"only function tools are supported, not {tool.get('type')!r} (OpenAI's hosted tools "
                        "run on OpenAI's servers)", f"{at}.type")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _fail("a function tool needs a 'name'", f"{at}.name")
        function: dict[str, Any] = {"name": name}
        parameters = tool.get("parameters")
        if parameters is not None:
            if not isinstance(parameters, dict):
                raise _fail("must be a JSON schema object", f"{at}.parameters")
            function["parameters"] = parameters
        if isinstance(tool.get("description"), str):
            function["description"] = tool["description"]
        if isinstance(tool.get("strict"), bool):
            function["strict"] = tool["strict"]
        out.append({"type": "function", "function": function})
    return out


def _tool_choice(choice: object) -> str | dict[str, Any]:
    if choice in ("auto", "none", "required"):
        return str(choice)
    if isinstance(choice, dict) and choice.get("type") == "function":
        name = choice.get("name")
        if isinstance(name, str) and name:
            return {"type": "function", "function": {"name": name}}
        raise _fail("a function tool_choice needs a 'name'", "tool_choice.name")
    raise _fail("one of 'auto', 'none', 'required' or {'type': 'function', 'name': ...}", "tool_choice")


def _format(text: object) -> dict[str, Any] | None:
    """`text.format` as a chat `response_format` (None: plain text)."""
    if not isinstance(text, dict):
        raise _fail("must be an object", "text")
    fmt = text.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict):
        raise _fail("must be an object with a 'type'", "text.format")
    match fmt.get("type"):
        case "text":
            return None
        case "json_object":
            return {"type": "json_object"}
        case "json_schema":
            name, schema = fmt.get("name"), fmt.get("schema")
            if not isinstance(name, str) or not name:
                raise _fail("a json_schema format needs a 'name'", "text.format.name")
            if not isinstance(schema, dict):
                raise _fail("a json_schema format needs a 'schema' object", "text.format.schema")
            spec: dict[str, Any] = {"name": name, "schema": schema}
            for key in ("strict", "description"):
                if fmt.get(key) is not None:
                    spec[key] = fmt[key]
            return {"type": "json_schema", "json_schema": spec}
        case other:
            raise _fail(f"'type' is text, json_object or json_schema, not {other!r}", "text.format.type")


def _number(body: dict[str, Any], name: str) -> float | int | None:
    value = body.get(name)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        raise _fail("must be a number", name)
    return value


def _refuse_hosted(request: dict[str, Any]) -> None:
    if request.get("background") not in (None, False):
        raise _fail("background responses are not supported: stream, or wait for the answer", "background")
    for name in ("conversation", "prompt"):
        if request.get(name) is not None:
            raise _fail(f"'{name}' names an object kept by OpenAI's own service; aiub does not have it "
                        "(use previous_response_id, or send the input)", name)


def _options(request: dict[str, Any], body: dict[str, Any]) -> None:
    tools = _tools(request["tools"]) if request.get("tools") is not None else []
    if tools:
        body["tools"] = tools
        if request.get("tool_choice") is not None:
            body["tool_choice"] = _tool_choice(request["tool_choice"])
        if isinstance(request.get("parallel_tool_calls"), bool):
            body["parallel_tool_calls"] = request["parallel_tool_calls"]
    elif request.get("tool_choice") not in (None, "auto", "none"):
        _tool_choice(request["tool_choice"])  # a malformed one is still a 400
        raise _fail("a tool_choice other than auto or none needs 'tools'", "tool_choice")
    limit = request.get("max_output_tokens")
    if limit is not None:
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise _fail("must be an integer greater than 0", "max_output_tokens")
        body["max_tokens"] = limit
    for name in ("temperature", "top_p"):
        if (value := _number(request, name)) is not None:
            body[name] = value
    if request.get("text") is not None and (fmt := _format(request["text"])) is not None:
        body["response_format"] = fmt
    reasoning = request.get("reasoning")
    if reasoning is not None:
        if not isinstance(reasoning, dict):
            raise _fail("must be an object", "reasoning")
        if isinstance(reasoning.get("effort"), str):
            body["reasoning_effort"] = reasoning["effort"]
    user = request.get("user") or request.get("safety_identifier")
    if user is not None:
        if not isinstance(user, str):
            raise _fail("must be a string", "user")
        body["user"] = user


def echoed(request: dict[str, Any]) -> dict[str, Any]:
    """The request's settings as the Response object repeats them."""
    text: dict[str, Any] = request["text"] if isinstance(request.get("text"), dict) else {}
    fmt = text.get("format") if isinstance(text.get("format"), dict) else {"type": "text"}
    reasoning: dict[str, Any] = request["reasoning"] if isinstance(request.get("reasoning"), dict) else {}
    metadata = request.get("metadata")
    return {"instructions": request.get("instructions"), "max_output_tokens": request.get("max_output_tokens"),
            "parallel_tool_calls": request.get("parallel_tool_calls") is not False,
            "previous_response_id": request.get("previous_response_id"),
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "store": request.get("store") is not False, "temperature": request.get("temperature"),
            "text": {"format": fmt}, "tool_choice": request.get("tool_choice") or "auto",
            "tools": request.get("tools") or [], "top_p": request.get("top_p"), "truncation": "disabled",
            "user": request.get("user"), "metadata": metadata if isinstance(metadata, dict) else {}}


def _optional(request: dict[str, Any], name: str, kind: type, what: str) -> Any:
    value = request.get(name)
    if value is not None and not isinstance(value, kind):
        raise _fail(f"must be {what}", name)
    return value


def translate(raw: bytes, *, response_id: str, created_at: int,
              earlier: Sequence[dict[str, Any]] = ()) -> Translated:
    """`earlier`: the items of the turn `previous_response_id` names (its input, then its output)."""
    request = decode_object(raw)
    model = request.get("model")
    if not isinstance(model, str) or not model.strip():
        raise _fail("'model' is required: a non-empty string", "model")
    _refuse_hosted(request)
    stream = _optional(request, "stream", bool, "a boolean")
    store = _optional(request, "store", bool, "a boolean")
    _optional(request, "metadata", dict, "an object")
    instructions = _optional(request, "instructions", str, "a string")
    items = input_items(request.get("input"))
    chat = [{"role": "system", "content": instructions}] if instructions else []
    chat += messages(earlier, "previous_response_id")
    chat += messages(items)
    if not chat:
        raise _fail("the conversation is empty: send at least one input item", "input")
    body: dict[str, Any] = {k: v for k, v in request.items() if k not in _HANDLED}
    body.update(model=model, messages=chat)
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    _options(request, body)
    return Translated(kind="chat", body=body, notes={
        "model": model, "response_id": response_id, "created_at": created_at, "echo": echoed(request),
        "input": [*earlier, *items], "store": store is not False, "image_at": first_image(items)})
