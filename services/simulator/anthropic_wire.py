"""Anthropic's Messages API wire format (`POST /v1/messages`, `GET /v1/models`). Pure.

Driven through the same reply interface as openai_wire. Kept faithful where clients care:
  * `max_tokens` is required, `messages` holds only user/assistant turns (a system prompt is
    the top-level `system`), and errors are `{"type": "error", "error": {"type", "message"}}`
    with Anthropic's error types (529 is `overloaded_error`);
  * a stream is SSE with an `event:` line before each `data:` line: `message_start`,
    `content_block_start`, `ping`, `content_block_delta`* (`text_delta`, or
    `input_json_delta` for a tool call), `content_block_stop`, `message_delta` (stop_reason,
    output usage), `message_stop`; there is no `[DONE]`;
  * stop reasons are `end_turn`, `max_tokens` (the cap cut the reply) and `tool_use`;
  * a request with `thinking: {"type": "enabled"}` gets a `thinking` block first (`THINKING`,
    signed), streamed as `thinking_delta` and `signature_delta`; the answer's block follows it.
The server checks the `x-api-key` and `anthropic-version` headers before a route runs.
"""

from __future__ import annotations

from typing import Any

import orjson

from services.simulator.engine import content_text
from services.simulator.knobs import Knobs, Script, count_tokens, script
from services.simulator.openai_wire import WireError
from services.simulator.tools import ToolCall, tool_call

JSON = b"application/json"
SSE = b"text/event-stream; charset=utf-8"
VERSION_HEADER = "anthropic-version"

ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 500: "api_error",
               529: "overloaded_error"}
THINKING = "Let me think about that."
SIGNATURE = "sim-signature"
NOT_FOUND = orjson.dumps({"type": "error", "error": {"type": "not_found_error", "message": "Not Found"}})
METHOD_NOT_ALLOWED = orjson.dumps({"type": "error", "error": {"type": "invalid_request_error",
                                                             "message": "Method Not Allowed"}})


def error_body(status: int, message: str) -> bytes:
    return orjson.dumps({"type": "error", "error": {"type": ERROR_TYPES.get(status, "api_error"),
                                                    "message": message}})


def model_not_found(model: str) -> WireError:
    return WireError(404, f"model: {model}")


def models_body(models: tuple[str, ...], created_at: str) -> bytes:
    data = [{"type": "model", "id": m, "display_name": m, "created_at": created_at} for m in models]
    return orjson.dumps({"data": data, "has_more": False, "first_id": models[0] if models else None,
                         "last_id": models[-1] if models else None})


def _event(obj: dict[str, Any]) -> bytes:
    return b"event: " + str(obj["type"]).encode() + b"\ndata: " + orjson.dumps(obj) + b"\n\n"


def _text_of(content: object) -> str:
    if isinstance(content, list):  # Anthropic blocks: text blocks carry the words
        return "".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return content_text(content)


def _check(body: dict[str, Any]) -> tuple[list[dict[str, Any]], int]:
    cap = body.get("max_tokens")
    if cap is None:
        raise WireError(400, "max_tokens: Field required")
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise WireError(400, "max_tokens: Input should be a valid integer greater than 0")
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs:
        raise WireError(400, "messages: Field required" if msgs is None
                        else "messages: at least one message is required")
    for i, m in enumerate(msgs):
        if not isinstance(m, dict) or m.get("role") not in ("user", "assistant"):
            role = m.get("role") if isinstance(m, dict) else None
            raise WireError(400, f"messages.{i}.role: Input should be 'user' or 'assistant' (got {role!r}); "
                                 "put a system prompt in the top-level `system`")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise WireError(400, "stream: Input should be a valid boolean")
    return msgs, cap


class MessagesReply:
    """One Messages reply: text pieces, or (tool_call knob + tools) one tool_use block."""

    __slots__ = ("_at", "_cap", "_id", "_model", "_prompt", "_s", "_thinking", "_tool", "content_type", "n",
                 "stream")

    def __init__(self, body: dict[str, Any], knobs: Knobs, model: str, rid: str, created: int) -> None:
        msgs, cap = _check(body)
        self.stream = bool(body.get("stream", False))
        last_user = next((_text_of(m.get("content")) for m in reversed(msgs) if m.get("role") == "user"), "")
        self._s: Script = script(knobs, cap, last_user)
        self._tool: ToolCall | None = tool_call(body, rid) if knobs.tool_call else None
        thinking = body.get("thinking")
        self._thinking = isinstance(thinking, dict) and thinking.get("type") == "enabled"
        self._at = 1 if self._thinking else 0  # the answer block's index
        self.n = self._tool.n if self._tool else self._s.n
        self._prompt = sum(count_tokens(_text_of(m.get("content"))) for m in msgs) + (
            count_tokens(str(body["system"])) if body.get("system") else 0)
        self._id = f"msg_{rid}"
        self._model = model
        self.content_type = SSE if self.stream else JSON

    @property
    def _stop_reason(self) -> str:
        if self._tool:
            return "tool_use"
        return "max_tokens" if self._s.finish_reason == "length" else "end_turn"

    def _message(self, content: list[dict[str, Any]], stop_reason: str | None, output: int) -> dict[str, Any]:
        return {"id": self._id, "type": "message", "role": "assistant", "model": self._model, "content": content,
                "stop_reason": stop_reason, "stop_sequence": None,
                "usage": {"input_tokens": self._prompt, "output_tokens": output}}

    def full(self, elapsed_ns: int) -> bytes:
        tool = self._tool
        block = ({"type": "tool_use", "id": tool.call_id, "name": tool.name, "input": tool.arguments} if tool
                 else {"type": "text", "text": self._s.text()})
        thinking = [{"type": "thinking", "thinking": THINKING, "signature": SIGNATURE}] if self._thinking else []
        return orjson.dumps(self._message([*thinking, block], self._stop_reason, self.n))

    def prelude(self) -> bytes:
        tool = self._tool
        block = ({"type": "tool_use", "id": tool.call_id, "name": tool.name, "input": {}} if tool
                 else {"type": "text", "text": ""})
        thinking = b""
        if self._thinking:
            thinking = (_event({"type": "content_block_start", "index": 0,
                                "content_block": {"type": "thinking", "thinking": "", "signature": ""}})
                        + _event({"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "thinking_delta", "thinking": THINKING}})
                        + _event({"type": "content_block_delta", "index": 0,
                                  "delta": {"type": "signature_delta", "signature": SIGNATURE}})
                        + _event({"type": "content_block_stop", "index": 0}))
        return (_event({"type": "message_start", "message": self._message([], None, 1)}) + thinking
                + _event({"type": "content_block_start", "index": self._at, "content_block": block})
                + _event({"type": "ping"}))

    def event(self, i: int) -> bytes:
        delta = ({"type": "input_json_delta", "partial_json": self._tool.pieces[i]} if self._tool
                 else {"type": "text_delta", "text": self._s.piece(i)})
        return _event({"type": "content_block_delta", "index": self._at, "delta": delta})

    def tail(self, elapsed_ns: int) -> bytes:
        return (_event({"type": "content_block_stop", "index": self._at})
                + _event({"type": "message_delta", "delta": {"stop_reason": self._stop_reason, "stop_sequence": None},
                          "usage": {"output_tokens": self.n}})
                + _event({"type": "message_stop"}))
