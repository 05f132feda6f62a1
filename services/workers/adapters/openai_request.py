"""Reading an OpenAI request body, for adapters that re-say it in another backend's API.

The gateway checked only what it needs (model, stream, messages' roles); everything else
arrives as the client sent it, so each reader here checks the shape it relies on and raises
`InvalidRequest` naming the field, rather than sending the backend something it did not ask.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from services.workers.adapters.base import InvalidRequest, StreamBroken

_decode = msgspec.json.decode


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class ImagePart:
    """An image as OpenAI carries it: a `data:` URL (media type and base64 data) or a plain URL."""

    media_type: str | None
    data: str | None
    url: str | None


Part = TextPart | ImagePart


def decode_object(body: bytes, what: str) -> dict[str, Any]:
    try:
        obj = _decode(body)
    except msgspec.DecodeError as e:
        raise StreamBroken(f"unreadable {what}: {e}") from None
    if not isinstance(obj, dict):
        raise StreamBroken(f"{what} is not a JSON object")
    return obj


def field(obj: dict[str, Any], key: str) -> dict[str, Any]:
    """`obj[key]` if it is an object, else an empty one: backends omit what they have nothing for."""
    value = obj.get(key)
    return value if isinstance(value, dict) else {}


def backend_error_message(body: bytes) -> str | None:
    """The error text in the error bodies backends send: OpenAI/vLLM `{"error": {"message"}}`,
    Anthropic `{"type": "error", "error": {"type", "message"}}`, Ollama `{"error": "..."}`,
    FastAPI `{"detail": ...}`; else the start of the body."""
    try:
        obj = _decode(body)
    except msgspec.DecodeError:
        return body[:200].decode("utf-8", "replace") or None
    if isinstance(obj, dict):
        error = obj.get("error", obj.get("detail", obj.get("message")))
        if isinstance(error, dict):
            return str(error.get("message") or error)
        if error is not None:
            return str(error)
    return None


def content_parts(content: object, param: str) -> list[Part]:
    if content is None:
        return []
    if isinstance(content, str):
        return [TextPart(content)]
    if not isinstance(content, list):
        raise InvalidRequest(f"{param} must be a string or an array of content parts", param)
    parts: list[Part] = []
    for i, part in enumerate(content):
        where = f"{param}[{i}]"
        if not isinstance(part, dict):
            raise InvalidRequest(f"{where} must be an object", where)
        kind = part.get("type")
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                raise InvalidRequest(f"{where}.text must be a string", where)
            parts.append(TextPart(text))
        elif kind == "image_url":
            parts.append(_image(part.get("image_url"), where))
        else:
            raise InvalidRequest(f"{where}: content parts of type {kind!r} are not supported by this provider", where)
    return parts


def _image(value: object, where: str) -> ImagePart:
    url = value.get("url") if isinstance(value, dict) else value
    if not isinstance(url, str) or not url:
        raise InvalidRequest(f"{where}.image_url.url must be a string", where)
    if url.startswith("data:"):
        header, sep, data = url[5:].partition(",")
        if not sep or not header.endswith(";base64"):
            raise InvalidRequest(f"{where}: an image data URL must be base64 (data:image/png;base64,...)", where)
        media_type = header[: -len(";base64")] or None
        return ImagePart(media_type, data, None)
    if url.startswith(("http://", "https://")):
        return ImagePart(None, None, url)
    raise InvalidRequest(f"{where}: image_url must be an http(s) or data: URL", where)


def text_of(parts: list[Part]) -> str:
    return "\n".join(p.text for p in parts if isinstance(p, TextPart))


def tool_arguments(call: object, param: str) -> tuple[str | None, str, dict[str, Any]]:
    """(id, name, arguments) of an assistant message's tool call; arguments arrive as a JSON string."""
    if not isinstance(call, dict) or not isinstance(call.get("function"), dict):
        raise InvalidRequest(f"{param} must be an object with a 'function'", param)
    function = call["function"]
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise InvalidRequest(f"{param}.function.name must be a non-empty string", param)
    raw = function.get("arguments") or "{}"
    if isinstance(raw, dict):
        arguments: object = raw
    else:
        try:
            arguments = _decode(raw) if isinstance(raw, str) else None
        except msgspec.DecodeError:
            arguments = None
    if not isinstance(arguments, dict):
        raise InvalidRequest(f"{param}.function.arguments must be a JSON object", param)
    call_id = call.get("id")
    return (call_id if isinstance(call_id, str) else None), name, arguments


def stop_list(body: dict[str, Any]) -> list[str] | None:
    stop = body.get("stop")
    if stop is None:
        return None
    if isinstance(stop, str):
        return [stop]
    if isinstance(stop, list) and all(isinstance(s, str) for s in stop):
        return list(stop)
    raise InvalidRequest("'stop' must be a string or an array of strings", "stop")


def max_tokens(body: dict[str, Any]) -> int | None:
    value = body.get("max_completion_tokens", body.get("max_tokens"))
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise InvalidRequest("'max_tokens' must be a positive integer", "max_tokens")
    return value


def require_single_choice(body: dict[str, Any]) -> None:
    n = body.get("n")
    if n is not None and n != 1:
        raise InvalidRequest("this provider returns one choice per request: 'n' must be 1", "n")


def tool_names_by_call_id(messages: list[Any]) -> dict[str, str]:
    """Tool results name their call by id; backends that want the tool's name get it from here."""
    names: dict[str, str] = {}
    for message in messages:
        if isinstance(message, dict):
            for call in message.get("tool_calls") or ():
                function = call.get("function") if isinstance(call, dict) else None
                if isinstance(function, dict) and isinstance(call.get("id"), str):
                    name = function.get("name")
                    if isinstance(name, str):
                        names[call["id"]] = name
    return names
