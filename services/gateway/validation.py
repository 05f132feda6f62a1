"""Checking an OpenAI request body before it goes on the bus. Pure: bytes in, request out.

Checked: what the gateway needs (model, stream, the payload the endpoint requires), JSON that
msgspec can decode (it refuses nesting past its own guard, about 1000 levels), and the types
of OpenAI's standard sampling fields, because a backend that gets `"temperature": "hot"` answers
in its own words (Ollama: a Go unmarshal error) or, worse, ignores it. Ranges are left to the
backend: llama.cpp takes a temperature OpenAI would refuse. Everything else passes through to the
backend untouched, but for the gateway's own fields, which are removed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from shared.config import GatewaySettings
from shared.errors import BadRequest
from shared.messages import RequestKind

GATEWAY_FIELDS = ("capability", "cache", "fallbacks")
_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_POSITIVE_INTEGERS = ("max_tokens", "max_completion_tokens", "n")
_decode = msgspec.json.decode
_NOT_AN_OBJECT = "the request body must be a JSON object"


@dataclass(frozen=True)
class ParsedRequest:
    kind: RequestKind
    model: str
    stream: bool
    body: dict[str, Any]  # what the backend receives
    capability: str | None
    cache: Any  # LiteLLM's `cache` field ({"no-cache": true}), for the cache policy
    # A front door's client body, for a provider that speaks its dialect (dialects/__init__.py).
    native: dict[str, Any] | None = None
    native_dialect: str | None = None


def _require(condition: bool, message: str, param: str) -> None:
    if not condition:
        raise BadRequest(message, param=param)


def _is_integer(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def decode_object(raw: bytes) -> dict[str, Any]:
    """A request body as a JSON object, whichever door it came through; BadRequest saying why not."""
    try:
        body = _decode(raw)
    except msgspec.DecodeError as e:
        raise BadRequest(f"the request body is not valid JSON: {e}") from None
    except UnicodeDecodeError as e:
        raise BadRequest(f"the request body is not valid UTF-8 (byte {e.start})") from None
    except RecursionError:  # msgspec's own guard
        raise BadRequest("the request body nests too deeply", param="body") from None
    _require(isinstance(body, dict), _NOT_AN_OBJECT, "body")
    return body  # type: ignore[no-any-return]


def parse(kind: RequestKind, raw: bytes, limits: GatewaySettings) -> ParsedRequest:
    return check(kind, decode_object(raw), limits)


def check(kind: RequestKind, body: Any, limits: GatewaySettings) -> ParsedRequest:
    """A decoded body (an OpenAI client's, or a front door's translation): checked, the gateway's
    own fields removed."""
    _require(isinstance(body, dict), _NOT_AN_OBJECT, "body")
    model = body.get("model")
    _require(isinstance(model, str) and bool(model.strip()), "'model' is required and must be a non-empty string",
             "model")
    stream = body.get("stream", False)
    if stream is None:  # OpenAI takes null for "not set"; a backend might not
        body.pop("stream")
        stream = False
    _require(isinstance(stream, bool), "'stream' must be a boolean", "stream")
    if kind == "embedding":
        _require(not stream, "embeddings cannot be streamed", "stream")
    if kind == "chat":
        messages = body.get("messages")
        _require(isinstance(messages, list) and len(messages) > 0, "'messages' must be a non-empty array",
                 "messages")
        _require(len(messages) <= limits.max_messages, f"at most {limits.max_messages} messages are allowed",
                 "messages")
        for i, message in enumerate(messages):
            _require(isinstance(message, dict) and isinstance(message.get("role"), str),
                     f"messages[{i}] must be an object with a string 'role'", f"messages[{i}]")
    elif kind == "completion":
        _require("prompt" in body and isinstance(body["prompt"], str | list), "'prompt' is required", "prompt")
    else:
        _require("input" in body and isinstance(body["input"], str | list) and body["input"] != [],
                 "'input' must be a string or a non-empty array", "input")
    options = body.get("stream_options")
    _require(options is None or isinstance(options, dict), "'stream_options' must be an object", "stream_options")
    for name in _POSITIVE_INTEGERS:
        value = body.get(name)
        _require(value is None or (_is_integer(value) and value >= 1), f"'{name}' must be a positive integer", name)
    for name in _NUMBERS:
        value = body.get(name)
        _require(value is None or (isinstance(value, int | float) and not isinstance(value, bool)),
                 f"'{name}' must be a number", name)
    seed = body.get("seed")
    _require(seed is None or _is_integer(seed), "'seed' must be an integer", "seed")
    stop = body.get("stop")
    stops = [] if stop is None else [stop] if isinstance(stop, str) else stop
    _require(isinstance(stops, list) and all(isinstance(x, str) for x in stops),
             "'stop' must be a string or an array of strings", "stop")
    for name in ("tools", "functions"):
        _require(body.get(name) is None or isinstance(body[name], list), f"'{name}' must be an array", name)
    response_format = body.get("response_format")
    _require(response_format is None or isinstance(response_format, dict), "'response_format' must be an object",
             "response_format")
    capability = body.pop("capability", None)
    _require(capability is None or isinstance(capability, str), "'capability' must be a string", "capability")
    cache = body.pop("cache", None)
    body.pop("fallbacks", None)
    return ParsedRequest(kind, model, stream, body, capability, cache)
