"""An Ollama client's request said in OpenAI's API, the shape the bus carries. Pure.

`parse(endpoint, raw)` reads the body of `/api/chat`, `/api/generate`, `/api/embed` or
`/api/embeddings` and returns an `OllamaRequest`: the OpenAI body to send, and what the
answer needs (the model name as the client spelled it, streamed or not). A bad field raises
`BadRequest` naming it, in Ollama's spelling (`options.temperature`).

Rules (Ollama's API reference: ollama/docs/api.md):
- `stream` absent or null means true: Ollama streams by default.
- `options`: the sampling names both APIs share, `num_predict` (→ `max_tokens`; 0 or less
  means no cap) and `stop` become OpenAI's top-level fields, by the table in
  shared/ollama_names.py; every other option (`num_ctx`, `mirostat`…) stays in an `options`
  object, which an Ollama backend's worker passes on and vLLM and llama.cpp ignore.
- `format` "json" or a schema → `response_format`; `keep_alive` and `think` pass as they are.
- messages: `images` (base64, no media type) become `image_url` parts with a data URL whose
  type is read from the image's first bytes; a backend that cannot see them answers 400.
  An assistant's `tool_calls` carry arguments as objects: they become JSON strings, with an
  id made up when the client sent none; a `tool` message is matched to its call by
  `tool_call_id`, else by `tool_name`, else to the first unanswered call.
- `/api/generate` applies the model's template to `prompt` (and `system`), as a chat turn
  does: it goes on the bus as a chat of one user message. With `raw: true` or a `suffix` it
  is a plain completion (`prompt`, `suffix`), which cannot carry images.
- A chat without messages, or a generate without a prompt, only loads the model in Ollama
  (`keep_alive: 0` unloads it): `load` says so and the gateway answers at once, since aiub's
  backends load their own models.
- `template`, `context` and `logprobs` are not translated (no backend behind an OpenAI API
  takes them).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from services.gateway.validation import decode_object
from shared.errors import BadRequest
from shared.messages import RequestKind
from shared.ollama_names import NUM_PREDICT, PASSTHROUGH, SAMPLING, response_format

Endpoint = Literal["chat", "generate", "embed", "embeddings"]
Load = Literal["load", "unload"]

_INTEGER_OPTIONS = frozenset({"seed", "top_k"})
# The first base64 characters of each image format Ollama's vision models take.
_IMAGE_TYPES = (("iVBORw0KGgo", "image/png"), ("/9j/", "image/jpeg"), ("R0lGOD", "image/gif"),
                ("UklGR", "image/webp"), ("Qk", "image/bmp"))
_ZERO_DURATION = re.compile(r"0+(\.0*)?(ns|us|µs|ms|s|m|h)?")


@dataclass(frozen=True)
class OllamaRequest:
    endpoint: Endpoint
    kind: RequestKind  # what goes on the bus
    model: str  # as the client spelled it: every answer echoes it
    stream: bool
    body: dict[str, Any]  # the OpenAI body
    load: Load | None = None  # nothing to generate: answered at once, without the bus


def _require(condition: bool, message: str, param: str) -> None:
    if not condition:
        raise BadRequest(message, param=param)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _strings(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(x, str) for x in value)


def routed_name(model: str, names: Collection[str]) -> str:
    """The name the bus routes. Ollama reads a name without a tag as `:latest`, and its clients
    often add the tag: `qwen-coder:latest` finds a configured `qwen-coder` when no model is
    configured under the tagged name itself."""
    if model.endswith(":latest") and model not in names and model[: -len(":latest")] in names:
        return model[: -len(":latest")]
    return model


def model_name(body: dict[str, Any], names: Collection[str] = ()) -> tuple[str, str]:
    """(as the client spelled it, as the bus routes it)."""
    model = body.get("model", body.get("name"))  # `name` is the older spelling
    _require(isinstance(model, str) and bool(model.strip()), "model is required", "model")
    assert isinstance(model, str)
    return model, routed_name(model, names)


def _stream(body: dict[str, Any]) -> bool:
    stream = body.get("stream")
    if stream is None:
        return True
    _require(isinstance(stream, bool), "'stream' must be a boolean", "stream")
    return bool(stream)


def _sampling(name: str, value: object) -> None:
    where = f"options.{name}"
    if name in _INTEGER_OPTIONS:
        _require(_is_integer(value), f"'{where}' must be an integer", where)
    else:
        _require(_is_number(value), f"'{where}' must be a number", where)


def _options(body: dict[str, Any], out: dict[str, Any]) -> None:
    given = body.get("options")
    if given is None:
        return
    _require(isinstance(given, dict), "'options' must be an object", "options")
    rest: dict[str, Any] = {}
    for name, value in given.items():
        if value is None:
            continue
        if name in SAMPLING:
            _sampling(name, value)
            out[name] = value
        elif name == NUM_PREDICT:
            _require(_is_integer(value), "'options.num_predict' must be an integer", "options.num_predict")
            if value > 0:  # -1 (endless) and -2 (fill the context) have no OpenAI spelling: no cap
                out["max_tokens"] = value
        elif name == "stop":
            stops = [value] if isinstance(value, str) else value
            _require(_strings(stops), "'options.stop' must be an array of strings", "options.stop")
            if stops:
                out["stop"] = stops
        else:
            rest[name] = value
    if rest:
        out["options"] = rest


def _common(body: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "stream": stream}
    if stream:
        out["stream_options"] = {"include_usage": True}  # the done line's counts
    _options(body, out)
    try:
        fmt = response_format(body.get("format"))
    except ValueError as e:
        raise BadRequest(str(e), param="format") from None
    if fmt is not None:
        out["response_format"] = fmt
    for name in PASSTHROUGH:
        if body.get(name) is not None:
            out[name] = body[name]
    return out


def _unloads(body: dict[str, Any]) -> bool:
    keep_alive = body.get("keep_alive")
    if _is_number(keep_alive):
        return bool(keep_alive == 0)
    return isinstance(keep_alive, str) and _ZERO_DURATION.fullmatch(keep_alive.strip()) is not None


def _load(body: dict[str, Any]) -> Load:
    return "unload" if _unloads(body) else "load"


def image_url(data: str) -> dict[str, Any]:
    media_type = next((kind for prefix, kind in _IMAGE_TYPES if data.startswith(prefix)), "image/png")
    return {"type": "image_url", "image_url": {"url": f"data:{media_type};base64,{data}"}}


def _content(text: str, images: object, where: str) -> str | list[dict[str, Any]]:
    if images is None or images == []:
        return text
    _require(_strings(images), f"'{where}.images' must be an array of base64 strings", f"{where}.images")
    assert isinstance(images, list)
    parts: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    return parts + [image_url(image) for image in images]


def _call_id(i: int, j: int) -> str:
    return "call_" + hashlib.blake2b(f"{i}:{j}".encode(), digest_size=8).hexdigest()


def _tool_calls(calls: object, i: int) -> list[dict[str, Any]]:
    where = f"messages[{i}].tool_calls"
    _require(isinstance(calls, list), f"'{where}' must be an array", where)
    assert isinstance(calls, list)
    out = []
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        _require(isinstance(function, dict) and isinstance(function.get("name"), str),
                 f"'{where}[{j}].function' must be an object with a string 'name'", f"{where}[{j}]")
        assert isinstance(call, dict) and isinstance(function, dict)
        arguments = function.get("arguments")
        _require(arguments is None or isinstance(arguments, dict),
                 f"'{where}[{j}].function.arguments' must be an object", f"{where}[{j}].function.arguments")
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else _call_id(i, j)
        out.append({"id": call_id, "type": "function",
                    "function": {"name": function["name"],
                                 "arguments": msgspec.json.encode(arguments or {}).decode()}})
    return out


class _Pending:
    """Tool calls not yet answered, oldest first: a `tool` message answers one of them."""

    def __init__(self) -> None:
        self._calls: list[tuple[str, str]] = []  # (id, function name)

    def add(self, calls: list[dict[str, Any]]) -> None:
        self._calls.extend((call["id"], call["function"]["name"]) for call in calls)

    def answer(self, call_id: object, tool_name: object) -> str | None:
        if isinstance(call_id, str) and call_id:
            self._calls = [c for c in self._calls if c[0] != call_id]
            return call_id
        found = next((c for c in self._calls if c[1] == tool_name), None) or next(iter(self._calls), None)
        if found is None:
            return None
        self._calls.remove(found)
        return found[0]


def _messages(given: object, max_messages: int) -> list[dict[str, Any]]:
    _require(isinstance(given, list), "'messages' must be an array", "messages")
    assert isinstance(given, list)
    _require(len(given) <= max_messages, f"at most {max_messages} messages are allowed", "messages")
    pending = _Pending()
    out = []
    for i, message in enumerate(given):
        where = f"messages[{i}]"
        _require(isinstance(message, dict) and isinstance(message.get("role"), str),
                 f"'{where}' must be an object with a string 'role'", where)
        content = message.get("content")
        _require(content is None or isinstance(content, str), f"'{where}.content' must be a string",
                 f"{where}.content")
        role = message["role"]
        converted: dict[str, Any] = {"role": role, "content": _content(content or "", message.get("images"), where)}
        if message.get("tool_calls"):
            converted["tool_calls"] = _tool_calls(message["tool_calls"], i)
            pending.add(converted["tool_calls"])
            if not content:
                converted["content"] = None
        if role == "tool":
            call_id = pending.answer(message.get("tool_call_id"), message.get("tool_name"))
            if call_id is not None:
                converted["tool_call_id"] = call_id
        out.append(converted)
    return out


def _chat(body: dict[str, Any], model: str, stream: bool, max_messages: int) -> OllamaRequest:
    messages = body.get("messages")
    if messages is None or messages == []:
        return OllamaRequest("chat", "chat", "", False, {}, _load(body))
    out = _common(body, model, stream)
    out["messages"] = _messages(messages, max_messages)
    tools = body.get("tools")
    if tools:
        _require(isinstance(tools, list) and all(isinstance(t, dict) for t in tools),
                 "'tools' must be an array of objects", "tools")
        out["tools"] = tools
    return OllamaRequest("chat", "chat", "", stream, out)


def _generate(body: dict[str, Any], model: str, stream: bool) -> OllamaRequest:
    prompt, system, suffix = body.get("prompt"), body.get("system"), body.get("suffix")
    for name, value in (("prompt", prompt), ("system", system), ("suffix", suffix)):
        _require(value is None or isinstance(value, str), f"'{name}' must be a string", name)
    raw = body.get("raw")
    _require(raw is None or isinstance(raw, bool), "'raw' must be a boolean", "raw")
    images = body.get("images")
    if not prompt and not images:
        return OllamaRequest("generate", "completion", "", False, {}, _load(body))
    out = _common(body, model, stream)
    if raw or suffix:
        # No template: a plain completion, which has no place for an image.
        _require(not images, "images need the model's template: send them without 'raw' and 'suffix'", "images")
        out["prompt"] = prompt or ""
        if suffix:
            out["suffix"] = suffix
        return OllamaRequest("generate", "completion", "", stream, out)
    messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": _content(prompt or "", images, "body")})
    out["messages"] = messages
    return OllamaRequest("generate", "chat", "", stream, out)


def _embed(endpoint: Endpoint, body: dict[str, Any], model: str) -> OllamaRequest:
    if endpoint == "embeddings":
        prompt = body.get("prompt")
        _require(prompt is None or isinstance(prompt, str), "'prompt' must be a string", "prompt")
        inputs: list[str] = [prompt] if prompt else []
    else:
        given = body.get("input")
        _require(given is None or isinstance(given, str) or _strings(given),
                 "'input' must be a string or an array of strings", "input")
        inputs = [given] if isinstance(given, str) and given else given if isinstance(given, list) else []
    if not inputs:
        return OllamaRequest(endpoint, "embedding", "", False, {}, "load")
    out: dict[str, Any] = {"model": model, "input": inputs}
    dimensions = body.get("dimensions")
    _require(dimensions is None or (_is_integer(dimensions) and dimensions >= 1),
             "'dimensions' must be a positive integer", "dimensions")
    if dimensions is not None:
        out["dimensions"] = dimensions
    for name in ("truncate", "keep_alive"):
        if body.get(name) is not None:
            out[name] = body[name]
    options = body.get("options")
    _require(options is None or isinstance(options, dict), "'options' must be an object", "options")
    if options:
        out["options"] = options
    return OllamaRequest(endpoint, "embedding", "", False, out)


def parse(endpoint: Endpoint, raw: bytes, names: Collection[str] = (), max_messages: int = 2048) -> OllamaRequest:
    """`names`: the configured model names, for the `:latest` rule (model_name)."""
    body = decode_object(raw)
    asked, routed = model_name(body, names)
    if endpoint in ("embed", "embeddings"):
        parsed = _embed(endpoint, body, routed)
    elif endpoint == "chat":
        parsed = _chat(body, routed, _stream(body), max_messages)
    else:
        parsed = _generate(body, routed, _stream(body))
    return OllamaRequest(endpoint, parsed.kind, asked, parsed.stream, parsed.body, parsed.load)
