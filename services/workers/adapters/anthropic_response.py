"""Anthropic's Messages replies turned into OpenAI's, streamed or whole.

A stream is server-sent events, each with an `event:` line naming a type that the data's own
`type` repeats: `message_start` (id, model, input usage), then per content block
`content_block_start` / `content_block_delta`* / `content_block_stop`, `ping`s anywhere,
`message_delta` (stop_reason, cumulative output usage) and `message_stop`. An `error` event
is a failure reported mid-stream. Rules:
- `message_start` → the role chunk; `text_delta` → content; `thinking_delta` →
  `reasoning_content`; a `tool_use` block start → a tool-call delta with id and name (its
  index counts tool calls, not blocks), each `input_json_delta` → an arguments fragment;
- `message_delta` → the finish chunk: `end_turn`/`stop_sequence`/`pause_turn` → `stop`,
  `max_tokens` → `length`, `tool_use` → `tool_calls`, `refusal` → `content_filter`;
- usage: input tokens (with cache reads and writes) are the prompt, output tokens the
  completion; the usage chunk follows only when asked; the stream is finished at
  `message_stop`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from services.workers.adapters.base import StreamBroken, StreamProgress, Usage
from services.workers.adapters.openai_request import decode_object, field
from services.workers.adapters.openai_shapes import ChunkWriter, chat_completion, tool_call
from shared.anthropic_terms import FINISH_REASONS
from shared.sse import SSEParser

_encode = msgspec.json.encode



def finish_reason(stop_reason: object) -> str:
    return FINISH_REASONS.get(stop_reason, "stop") if isinstance(stop_reason, str) else "stop"


def prompt_tokens(usage: dict[str, Any]) -> int:
    return sum(int(usage.get(k) or 0) for k in ("input_tokens", "cache_creation_input_tokens",
                                                "cache_read_input_tokens"))


def _error_text(obj: dict[str, Any]) -> str:
    error = obj.get("error")
    if isinstance(error, dict):
        return f"{error.get('type', 'error')}: {error.get('message', '')}"
    return str(error)


class AnthropicStream(StreamProgress):
    def __init__(self, writer: ChunkWriter, include_usage: bool) -> None:
        super().__init__()
        self._writer = writer
        self._include_usage = include_usage
        self._parser = SSEParser()
        self._tool_index: dict[int, int] = {}  # content block index → OpenAI tool call index

    def feed(self, raw: bytes) -> list[bytes]:
        out: list[bytes] = []
        for payload in self._parser.feed(raw):
            if self._done:
                break
            out.extend(self._event(decode_object(payload, "event")))
        self.content_events += len(out)
        return out

    def _event(self, event: dict[str, Any]) -> list[bytes]:
        writer = self._writer
        match event.get("type"):
            case "message_start":
                message = field(event, "message")
                usage = field(message, "usage")
                self.usage = Usage(prompt_tokens(usage), int(usage.get("output_tokens") or 0))
                return [writer.role()]
            case "content_block_start":
                block = field(event, "content_block")
                if block.get("type") == "tool_use":
                    index = self._tool_index.setdefault(int(event.get("index") or 0), len(self._tool_index))
                    return [writer.tool_calls([tool_call(index, str(block.get("id")), str(block.get("name")), "")])]
                if block.get("type") == "text" and block.get("text"):
                    return [writer.content(str(block["text"]))]
                return []
            case "content_block_delta":
                return self._delta(event)
            case "message_delta":
                usage = field(event, "usage")
                if usage.get("output_tokens") is not None:
                    self.usage.completion_tokens = int(usage["output_tokens"])
                if usage.get("input_tokens") is not None:
                    self.usage.prompt_tokens = prompt_tokens(usage)
                delta = field(event, "delta")
                return [writer.finish(finish_reason(delta.get("stop_reason")))]
            case "message_stop":
                self._done = True
                return [writer.usage(self.usage)] if self._include_usage else []
            case "error":
                raise StreamBroken(f"backend reported an error mid-stream: {_error_text(event)}")
            case _:  # ping, content_block_stop, and event types added later
                return []

    def _delta(self, event: dict[str, Any]) -> list[bytes]:
        delta = field(event, "delta")
        match delta.get("type"):
            case "text_delta":
                return [self._writer.content(str(delta.get("text") or ""))] if delta.get("text") else []
            case "thinking_delta":
                return [self._writer.reasoning(str(delta.get("thinking") or ""))] if delta.get("thinking") else []
            case "input_json_delta":
                index = self._tool_index.get(int(event.get("index") or 0))
                if index is None:
                    raise StreamBroken("input_json_delta for a block that is not a tool_use")
                fragment = str(delta.get("partial_json") or "")
                return [self._writer.tool_calls([tool_call(index, None, None, fragment)])] if fragment else []
            case _:
                return []


def messages_result(body: bytes, response_id: str, created: int, model: str) -> tuple[bytes, Usage]:
    obj = decode_object(body, "response")
    if obj.get("type") == "error":
        raise StreamBroken(f"backend answered 200 with an error: {_error_text(obj)}")
    text: list[str] = []
    thinking: list[str] = []
    calls: list[dict[str, Any]] = []
    for block in obj.get("content") or ():
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            text.append(str(block.get("text") or ""))
        elif block.get("type") == "thinking":
            thinking.append(str(block.get("thinking") or ""))
        elif block.get("type") == "tool_use":
            calls.append({"id": str(block.get("id")), "type": "function",
                          "function": {"name": str(block.get("name")),
                                       "arguments": _encode(block.get("input") or {}).decode()}})
    usage_obj = field(obj, "usage")
    usage = Usage(prompt_tokens(usage_obj), int(usage_obj.get("output_tokens") or 0))
    content = "".join(text)
    data = chat_completion(response_id, created, model, content if content or not calls else None, calls,
                           finish_reason(obj.get("stop_reason")), usage, "".join(thinking) or None)
    return data, usage
