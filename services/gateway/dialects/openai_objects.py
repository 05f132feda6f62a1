"""Reading the OpenAI objects that frames carry, for every front door. Pure.

A front door turns these into its own dialect; what they hold, read once here:
- a chunk's first choice: `delta.content`, the reasoning text (vLLM's `reasoning_content`, or
  `reasoning` as newer vLLM and Ollama's OpenAI layer name it), `delta.tool_calls` fragments (by
  `index`: the first fragment of a call has its id and name, later ones only argument text),
  `finish_reason`; and `usage` (the last chunk, when the stream was asked for it);
- a whole chat.completion: the same, in `message`, with whole tool calls.
`as_chunk` says a whole answer as one chunk, for a backend that ignored `stream: true`.
For the doors' stream translators: `Tally` keeps what a stream's chunks said about its end, and
`opens_call` says where one tool call ends and the next begins.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

_decode = msgspec.json.decode
_encode = msgspec.json.encode


# Structs, not frozen dataclasses: one is made per streamed chunk, and a frozen dataclass's
# __init__ (object.__setattr__ per field) was most of a door's cost per chunk (bench/front_door_bench.py).
class ToolCallPiece(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    id: str | None
    name: str | None
    arguments: str


class Piece(msgspec.Struct, frozen=True, kw_only=True):
    """What one OpenAI object (chunk or whole) says, in reading order: reasoning, text, tool calls."""

    reasoning: str = ""
    text: str = ""
    tool_calls: tuple[ToolCallPiece, ...] = ()
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    model: str | None = None
    id: str | None = None


@dataclass
class Tally:
    """A stream's last finish reason and usage, as its chunks said them."""

    finish: str | None = None
    prompt: int | None = None
    completion: int | None = None

    def note(self, piece: Piece) -> None:
        if piece.finish_reason is not None:
            self.finish = piece.finish_reason
        if piece.prompt_tokens is not None:
            self.prompt = piece.prompt_tokens
        if piece.completion_tokens is not None:
            self.completion = piece.completion_tokens

    def usage(self, prompt_tokens: int, completion_tokens: int) -> tuple[int | None, int | None]:
        """The Done frame's counts; where one is 0 (a backend that did not say), the chunks'."""
        return prompt_tokens or self.prompt, completion_tokens or self.completion


def opens_call(fragment: ToolCallPiece, open_index: int | None) -> bool:
    """Whether a tool call fragment begins a call rather than continuing the open one (`open_index`,
    None when none is open): a call's first fragment names it (an id or a name), at another index."""
    return open_index is None or (fragment.index != open_index and bool(fragment.id or fragment.name))


def _object(data: bytes) -> dict[str, Any]:
    obj = _decode(data)
    return obj if isinstance(obj, dict) else {}


def _reasoning(message: dict[str, Any]) -> str:
    value = message.get("reasoning_content") or message.get("reasoning") or ""
    return value if isinstance(value, str) else ""


def _calls(raw: object) -> tuple[ToolCallPiece, ...]:
    if not isinstance(raw, list):
        return ()
    out = []
    for position, call in enumerate(raw):
        if not isinstance(call, dict):
            continue
        function: dict[str, Any] = call["function"] if isinstance(call.get("function"), dict) else {}
        index = call.get("index")
        arguments = function.get("arguments")
        if isinstance(arguments, dict):  # a backend that sent the object itself
            arguments = _encode(arguments).decode()
        out.append(ToolCallPiece(index=index if isinstance(index, int) else position,
                                 id=call.get("id") if isinstance(call.get("id"), str) else None,
                                 name=function.get("name") if isinstance(function.get("name"), str) else None,
                                 arguments=arguments if isinstance(arguments, str) else ""))
    return tuple(out)


# The shape every well-behaved backend sends, decoded straight into Structs: about twice as fast
# as a dict walked with isinstance checks, which stays for the objects that do not fit it
# (arguments sent as an object, a number where text belongs...).
class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _Call(msgspec.Struct):
    index: int | None = None
    id: str | None = None
    function: _Function | None = None


class _Message(msgspec.Struct):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    tool_calls: list[_Call] | None = None


class _Choice(msgspec.Struct):
    delta: _Message | None = None
    message: _Message | None = None
    text: str | None = None
    finish_reason: str | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class _Object(msgspec.Struct):
    id: str | None = None
    model: str | None = None
    choices: list[_Choice] | None = None
    usage: _Usage | None = None


_typed = msgspec.json.Decoder(_Object).decode
_NO_MESSAGE = _Message()


def read(data: bytes) -> Piece:
    """One OpenAI chat object, chunk (`delta`) or whole (`message`); a completion's `text` reads as text."""
    try:
        obj = _typed(data)
    except msgspec.ValidationError:
        return _read_loosely(data)
    choice = obj.choices[0] if obj.choices else _Choice()
    if choice.delta is not None and choice.message is not None:
        return _read_loosely(data)  # which one counts depends on keys the Structs do not keep
    message = choice.delta or choice.message or _NO_MESSAGE
    text = message.content if message.content is not None else choice.text
    calls = () if not message.tool_calls else tuple(
        ToolCallPiece(index=position if call.index is None else call.index, id=call.id,
                      name=call.function.name if call.function else None,
                      arguments=(call.function.arguments if call.function else None) or "")
        for position, call in enumerate(message.tool_calls))
    usage = obj.usage
    return Piece(reasoning=message.reasoning_content or message.reasoning or "", text=text or "",
                 tool_calls=calls, finish_reason=choice.finish_reason,
                 prompt_tokens=usage.prompt_tokens if usage else None,
                 completion_tokens=usage.completion_tokens if usage else None, model=obj.model, id=obj.id)


def _read_loosely(data: bytes) -> Piece:
    obj = _object(data)
    usage = obj.get("usage") if isinstance(obj.get("usage"), dict) else None
    choices = obj.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else {}
    message = choice.get("delta") or choice.get("message") or {}
    if not isinstance(message, dict):
        message = {}
    text = message.get("content")
    if text is None:
        text = choice.get("text")
    return Piece(reasoning=_reasoning(message), text=text if isinstance(text, str) else "",
                 tool_calls=_calls(message.get("tool_calls")),
                 finish_reason=choice.get("finish_reason") if isinstance(choice.get("finish_reason"), str) else None,
                 prompt_tokens=_int(usage, "prompt_tokens"), completion_tokens=_int(usage, "completion_tokens"),
                 model=obj.get("model") if isinstance(obj.get("model"), str) else None,
                 id=obj.get("id") if isinstance(obj.get("id"), str) else None)


def _int(usage: dict[str, Any] | None, name: str) -> int | None:
    value = usage.get(name) if usage else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def as_chunk(data: bytes) -> bytes:
    """A whole chat.completion (or text_completion) said as one chunk of its stream."""
    obj = _object(data)
    choices = []
    for choice in obj.get("choices") or ():
        if not isinstance(choice, dict):
            continue
        if "message" in choice:
            delta = dict(choice["message"]) if isinstance(choice["message"], dict) else {}
            if isinstance(delta.get("tool_calls"), list):
                delta["tool_calls"] = [{**c, "index": i} for i, c in enumerate(delta["tool_calls"])
                                       if isinstance(c, dict)]
            choice = {k: v for k, v in choice.items() if k != "message"} | {"delta": delta}
        choices.append(choice)
    kind = "chat.completion.chunk" if obj.get("object") == "chat.completion" else obj.get("object")
    return _encode({**obj, "object": kind, "choices": choices})
