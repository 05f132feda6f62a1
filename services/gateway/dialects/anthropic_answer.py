"""OpenAI answers said as Anthropic Messages answers: whole, streamed, and errors. Pure.

The inverse of services/workers/adapters/anthropic_response.py.

A whole answer is a `message`: content blocks in reading order, `thinking` (a backend's
reasoning text: vLLM's `reasoning_content`), `text`, then one `tool_use` per tool call (input
parsed from the arguments); `stop_reason` from the finish reason (shared/anthropic_terms.py);
usage as input/output tokens.

A stream is the Messages event sequence, `event: <type>` before each `data:` line:

    message_start                                   before anything else (usage: an estimate of the input)
    content_block_start(i) [ping after the first]   a block opens when its kind of delta first arrives:
    content_block_delta(i)*                           thinking_delta, text_delta, input_json_delta
    content_block_stop(i)                           when another kind (or another tool call) begins, or at the end
    message_delta                                   stop_reason, stop_sequence, usage (input and output tokens)
    message_stop

Rules: blocks never interleave (Anthropic's are sequential; a block, once stopped, never gets
another delta); a tool call opens a `tool_use` block with its id and name and `input: {}`,
and its argument fragments are `input_json_delta`s; a stream that produced nothing still has
one (empty) text block, as Anthropic's own do. A failure after the stream began is one `error`
event and nothing after it: no `message_stop`, so no client mistakes it for a finished message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from services.gateway.dialects import Translated
from services.gateway.dialects.openai_objects import Piece, Tally, opens_call, read
from shared.anthropic_terms import STOP_REASONS, error_type
from shared.messages import ErrorBody

_encode = msgspec.json.encode
_decode = msgspec.json.decode


def frame(obj: dict[str, Any]) -> bytes:
    return b"event: " + str(obj["type"]).encode() + b"\ndata: " + _encode(obj) + b"\n\n"


def error_body(status: int, error: ErrorBody) -> dict[str, Any]:
    return {"type": "error", "error": {"type": error_type(status), "message": error.message}}


def _message_id(openai_id: str | None, fallback: str) -> str:
    return "msg_" + (openai_id or fallback).removeprefix("chatcmpl-")


def stop_reason(finish_reason: str | None, matched: str | None, stops: tuple[str, ...],
                used_tools: bool) -> tuple[str, str | None]:
    """(stop_reason, stop_sequence)."""
    if used_tools and finish_reason in (None, "stop", "tool_calls"):
        return "tool_use", None  # some backends (Ollama) finish a tool call with `stop`
    if finish_reason == "stop" and matched is not None and matched in stops:
        return "stop_sequence", matched
    return STOP_REASONS.get(finish_reason or "stop", "end_turn"), None


def _tool_input(arguments: str) -> Any:
    try:
        value = _decode(arguments) if arguments.strip() else {}
    except msgspec.DecodeError:
        return {}  # a backend's broken JSON: the call still reaches the client, its input empty
    return value if isinstance(value, dict) else {}


def _usage(notes: Mapping[str, Any], prompt: int | None, completion: int | None) -> dict[str, int]:
    return {"input_tokens": prompt if prompt is not None else int(notes.get("estimated_input_tokens", 0)),
            "output_tokens": completion or 0}


def message(translated: Translated, data: bytes) -> bytes:
    """A chat.completion → an Anthropic `message`."""
    piece = read(data)
    notes = translated.notes
    content: list[dict[str, Any]] = []
    if piece.reasoning:
        content.append({"type": "thinking", "thinking": piece.reasoning, "signature": ""})
    if piece.text or not piece.tool_calls:
        content.append({"type": "text", "text": piece.text})
    for call in piece.tool_calls:
        content.append({"type": "tool_use", "id": call.id or f"toolu_{call.index}", "name": call.name or "",
                        "input": _tool_input(call.arguments)})
    reason, sequence = stop_reason(piece.finish_reason, _matched(data), notes.get("stops", ()),
                                   bool(piece.tool_calls))
    return _encode({"id": _message_id(piece.id, "gateway"), "type": "message", "role": "assistant",
                    "model": notes.get("model") or piece.model or "", "content": content, "stop_reason": reason,
                    "stop_sequence": sequence, "usage": _usage(notes, piece.prompt_tokens, piece.completion_tokens)})


def _matched(data: bytes) -> str | None:
    """vLLM's `choices[0].stop_reason`: the stop string that ended the answer, when one did."""
    obj = _decode(data)
    choices = obj.get("choices") if isinstance(obj, dict) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        value = choices[0].get("stop_reason")
        return value if isinstance(value, str) else None
    return None


class MessageStream:
    """One streamed answer's events (see the module docstring); the dialect's StreamTranslator."""

    def __init__(self, translated: Translated) -> None:
        self._notes = translated.notes
        self._started = False
        self._pinged = False
        self._index = -1  # the current content block's index; -1 before the first
        self._open: str | None = None  # "text", "thinking" or "tool_use"
        self._tool: int | None = None  # the OpenAI tool call index the open tool_use block holds
        self._used_tools = False
        self._tally = Tally()
        self._matched: str | None = None
        self._id: str | None = None

    def _start(self, out: list[bytes]) -> None:
        if self._started:
            return
        self._started = True
        out.append(frame({"type": "message_start", "message": {
            "id": _message_id(self._id, "gateway"), "type": "message", "role": "assistant",
            "model": self._notes.get("model", ""), "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": _usage(self._notes, None, 0)}}))

    def _close(self, out: list[bytes]) -> None:
        if self._open is not None:
            out.append(frame({"type": "content_block_stop", "index": self._index}))
            self._open = None
            self._tool = None

    def _begin(self, out: list[bytes], block: dict[str, Any]) -> None:
        self._close(out)
        self._index += 1
        self._open = block["type"]
        out.append(frame({"type": "content_block_start", "index": self._index, "content_block": block}))
        if not self._pinged:
            self._pinged = True
            out.append(frame({"type": "ping"}))

    def _delta(self, out: list[bytes], delta: dict[str, Any]) -> None:
        out.append(frame({"type": "content_block_delta", "index": self._index, "delta": delta}))

    def _piece(self, piece: Piece, out: list[bytes]) -> None:
        if piece.reasoning:
            if self._open != "thinking":
                self._begin(out, {"type": "thinking", "thinking": "", "signature": ""})
            self._delta(out, {"type": "thinking_delta", "thinking": piece.reasoning})
        if piece.text:
            if self._open != "text":
                self._begin(out, {"type": "text", "text": ""})
            self._delta(out, {"type": "text_delta", "text": piece.text})
        for call in piece.tool_calls:
            if opens_call(call, self._tool):  # None unless a tool_use block is open
                self._begin(out, {"type": "tool_use", "id": call.id or f"toolu_{self._index + 1}",
                                  "name": call.name or "", "input": {}})
                self._tool = call.index
                self._used_tools = True
            if call.arguments:
                self._delta(out, {"type": "input_json_delta", "partial_json": call.arguments})
        self._tally.note(piece)

    def chunks(self, payloads: list[bytes]) -> bytes:
        out: list[bytes] = []
        for payload in payloads:
            piece = read(payload)
            if self._id is None:
                self._id = piece.id
            self._start(out)
            if self._matched is None and piece.finish_reason is not None:
                self._matched = _matched(payload)
            self._piece(piece, out)
        return b"".join(out)

    def end(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        out: list[bytes] = []
        self._start(out)
        if self._index < 0:
            self._begin(out, {"type": "text", "text": ""})
        self._close(out)
        reason, sequence = stop_reason(self._tally.finish, self._matched, self._notes.get("stops", ()),
                                       self._used_tools)
        usage = _usage(self._notes, *self._tally.usage(prompt_tokens, completion_tokens))
        out.append(frame({"type": "message_delta", "delta": {"stop_reason": reason, "stop_sequence": sequence},
                          "usage": usage}))
        out.append(frame({"type": "message_stop"}))
        return b"".join(out)

    def error(self, status: int, error: ErrorBody) -> bytes:
        return frame(error_body(status, error))
