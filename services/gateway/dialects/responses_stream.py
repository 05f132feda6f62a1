"""OpenAI chat chunks in, Responses API stream events out: one streamed answer. Pure.

Each event is `event: <type>` and `data: <json>` with a `sequence_number` counting from 0:

    response.created, response.in_progress               first, with the Response (in_progress, no output)
    response.output_item.added                           an item opens when its kind of delta first arrives:
      reasoning: content_part.added(reasoning_text), reasoning_text.delta*, reasoning_text.done, content_part.done
      message:   content_part.added(output_text), output_text.delta*, output_text.done, content_part.done
      function_call:                                     function_call_arguments.delta*, function_call_arguments.done
    response.output_item.done                            when another kind (or another call) begins, or at the end
    response.completed | response.incomplete             the whole Response, with usage

Rules: items never interleave (an item, once done, gets no more deltas); a tool call's first
fragment (with its id and name) opens a `function_call` item, later fragments are its argument
deltas. A failure after the stream began is an `error` event and then `response.failed` (the
Response with `status: "failed"`, its `error`, the items done so far); nothing follows it, so no
client mistakes it for a finished answer. No `[DONE]`: the Responses API ends with its last event.
`final` holds the Response the last event carried, for the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import msgspec

from services.gateway.dialects.openai_objects import Piece, Tally, ToolCallPiece, opens_call, read
from services.gateway.dialects.responses_answer import (
    call_item,
    failure,
    message_item,
    output_text,
    reasoning_item,
    response,
    status_of,
    usage,
)
from shared.messages import ErrorBody

_encode = msgspec.json.encode


@dataclass
class _Open:
    kind: str  # "reasoning", "message" or "function_call"
    index: int
    id: str = ""
    text: list[str] = field(default_factory=list)  # the text, or the call's arguments, so far
    call: ToolCallPiece | None = None
    delta_frame: tuple[bytes, bytes, bytes] = (b"", b"", b"")  # a delta event's bytes around its number and text


class ResponseStream:
    """The dialect's StreamTranslator for one streamed answer (see the module docstring)."""

    def __init__(self, notes: Mapping[str, Any]) -> None:
        self._notes = notes
        self._sequence = 0
        self._started = False
        self._output: list[dict[str, Any]] = []  # the items done
        self._open: _Open | None = None
        self._tally = Tally()
        self.final: dict[str, Any] | None = None

    def _event(self, out: list[bytes], kind: str, **fields: Any) -> None:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        out.append(b"event: " + kind.encode() + b"\ndata: " + _encode(payload) + b"\n\n")

    def _start(self, out: list[bytes]) -> None:
        if not self._started:
            self._started = True
            now = response(self._notes, status="in_progress", output=[])
            self._event(out, "response.created", response=now)
            self._event(out, "response.in_progress", response=now)

    def _item(self, status: str) -> dict[str, Any]:
        """The open item as it stands."""
        assert self._open is not None
        o, text = self._open, "".join(self._open.text)
        if o.kind == "reasoning":
            return reasoning_item(self._notes, o.index, text, status)
        if o.kind == "message":
            return message_item(self._notes, o.index, text, status)
        assert o.call is not None
        return call_item(self._notes, o.index, o.call.id, o.call.name or "", text, status)

    def _part(self, text: str) -> dict[str, Any]:
        assert self._open is not None
        return {"type": "reasoning_text", "text": text} if self._open.kind == "reasoning" else output_text(text)

    def _begin(self, out: list[bytes], kind: str, call: ToolCallPiece | None = None) -> None:
        self._close(out, "completed")
        self._open = _Open(kind, len(self._output), call=call)
        item = self._item("in_progress")
        self._open.id = item["id"]
        if kind == "message":
            item["content"] = []
        self._event(out, "response.output_item.added", output_index=self._open.index, item=item)
        if kind != "function_call":
            self._event(out, "response.content_part.added", item_id=item["id"], output_index=self._open.index,
                        content_index=0, part=self._part(""))

    def _close(self, out: list[bytes], status: str) -> None:
        o = self._open
        if o is None:
            return
        item = self._item(status)
        where = {"item_id": item["id"], "output_index": o.index}
        text = "".join(o.text)
        if o.kind == "reasoning":
            self._event(out, "response.reasoning_text.done", **where, content_index=0, text=text)
        elif o.kind == "message":
            self._event(out, "response.output_text.done", **where, content_index=0, text=text, logprobs=[])
        else:
            self._event(out, "response.function_call_arguments.done", **where, name=item["name"], arguments=text)
        if o.kind != "function_call":
            self._event(out, "response.content_part.done", **where, content_index=0, part=self._part(text))
        self._event(out, "response.output_item.done", output_index=o.index, item=item)
        self._output.append(item)
        self._open = None

    def _delta(self, out: list[bytes], text: str) -> None:
        """One delta event: what `_event` would say, from bytes made once per item (one event per token)."""
        o = self._open
        assert o is not None
        o.text.append(text)
        if not o.delta_frame[0]:
            o.delta_frame = _delta_frame(o)
        head, middle, tail = o.delta_frame
        out.append(head + str(self._sequence).encode() + middle + _encode(text) + tail)
        self._sequence += 1

    def _piece(self, piece: Piece, out: list[bytes]) -> None:
        if piece.reasoning:
            if self._open is None or self._open.kind != "reasoning":
                self._begin(out, "reasoning")
            self._delta(out, piece.reasoning)
        if piece.text:
            if self._open is None or self._open.kind != "message":
                self._begin(out, "message")
            self._delta(out, piece.text)
        for call in piece.tool_calls:
            o = self._open
            if opens_call(call, o.call.index if o is not None and o.call is not None else None):
                self._begin(out, "function_call", call)
            if call.arguments:
                self._delta(out, call.arguments)
        self._tally.note(piece)

    def chunks(self, payloads: list[bytes]) -> bytes:
        out: list[bytes] = []
        self._start(out)
        for payload in payloads:
            self._piece(read(payload), out)
        return b"".join(out)

    def end(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        out: list[bytes] = []
        self._start(out)
        status, incomplete = status_of(self._tally.finish)
        self._close(out, "incomplete" if status == "incomplete" else "completed")
        prompt, completion = self._tally.usage(prompt_tokens, completion_tokens)
        spent = usage(prompt or 0, completion or 0)
        self.final = response(self._notes, status=status, output=self._output, usage=spent, incomplete=incomplete)
        self._event(out, f"response.{status}", response=self.final)
        return b"".join(out)

    def error(self, status: int, error: ErrorBody) -> bytes:
        out: list[bytes] = []
        self._start(out)
        self._close(out, "incomplete")
        self._event(out, "error", code=error.code or error.type, message=error.message, param=error.param)
        failed = response(self._notes, status="failed", output=self._output, error=failure(status, error))
        self._event(out, "response.failed", response=failed)
        return b"".join(out)


_DELTA_EVENTS = {"reasoning": "response.reasoning_text.delta", "message": "response.output_text.delta",
                 "function_call": "response.function_call_arguments.delta"}


def _delta_frame(o: _Open) -> tuple[bytes, bytes, bytes]:
    """A delta event of the open item, cut around its sequence number and its text: the fields in
    `_event`'s order, `{type, sequence_number, item_id, output_index[, content_index], delta[, logprobs]}`."""
    kind = _DELTA_EVENTS[o.kind].encode()
    head = b"event: " + kind + b'\ndata: {"type":"' + kind + b'","sequence_number":'
    middle = b',"item_id":' + _encode(o.id) + b',"output_index":' + str(o.index).encode()
    middle += (b',"delta":' if o.kind == "function_call" else b',"content_index":0,"delta":')
    tail = b',"logprobs":[]}\n\n' if o.kind == "message" else b"}\n\n"
    return head, middle, tail
