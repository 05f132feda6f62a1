"""An OpenAI stream said as Ollama's: chunk objects in, NDJSON lines out. Pure (times are given).

    stream = OllamaStream("chat", "llama3.1:8b", started_ns)
    stream.feed(chunk_bytes, now_ns, created_at)   # → lines: b'{...,"done":false}\\n'
    stream.done(prompt_tokens, completion_tokens, now_ns, created_at)   # → the last line
    stream.error("the backend broke off")          # → b'{"error":"..."}\\n', also the last

Rules:
- every content or reasoning piece is one line, `done: false`: /api/chat's carry
  `message: {role, content[, thinking]}`, /api/generate's `response[, thinking]`; a chunk with
  neither (the role chunk, the finish chunk, the usage chunk) says nothing;
- OpenAI streams a tool call's arguments as pieces of JSON text; Ollama sends each call whole,
  its arguments an object. The pieces are gathered by index, and the calls go out in one line
  when the finish reason arrives (or at the end, if it never does);
- the last line is `done: true` with `done_reason` and the counters (ollama_response.Timings):
  the Done frame's counts, else those of the usage chunk; `prompt_eval_duration` runs to the
  first content line;
- a failure after lines were sent is one `{"error": "..."}` line, as Ollama reports one; the
  `ollama` library raises it. Nothing follows a done or error line.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from services.gateway.dialects.ollama_response import Timings, error_body, message, read, tool_call
from services.gateway.dialects.openai_objects import Tally, ToolCallPiece
from shared.ollama_names import done_reason

_encode = msgspec.json.encode


class _Call:
    __slots__ = ("arguments", "id", "name")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name = ""
        self.arguments: list[str] = []


class OllamaStream:
    def __init__(self, endpoint: Literal["chat", "generate"], model: str, started_ns: int) -> None:
        self._endpoint = endpoint
        self._model = model
        self._started_ns = started_ns
        self._first_ns: int | None = None
        self._calls: dict[int, _Call] = {}
        self._tally = Tally()
        self._head = b'{"model":' + _encode(model) + b',"created_at":'
        self.finished = False

    def _piece_line(self, created_at: str, content: str, thinking: str) -> bytes:
        """`_line` for a piece of text, the line sent per token, joined from bytes instead of a dict."""
        thought = b',"thinking":' + _encode(thinking) if thinking else b""
        if self._endpoint == "chat":
            said = b',"message":{"role":"assistant","content":' + _encode(content) + thought + b"}"
        else:
            said = b',"response":' + _encode(content) + thought
        return self._head + _encode(created_at) + said + b',"done":false}\n'

    def _line(self, created_at: str, content: str, thinking: str = "",
              tool_calls: list[dict[str, Any]] | None = None, final: dict[str, Any] | None = None) -> bytes:
        head: dict[str, Any] = {"model": self._model, "created_at": created_at}
        if self._endpoint == "chat":
            head["message"] = message(content, thinking, tool_calls)
        else:
            head["response"] = content
            if thinking:
                head["thinking"] = thinking
        return _encode({**head, "done": final is not None, **(final or {})}) + b"\n"

    def _gather(self, pieces: tuple[ToolCallPiece, ...]) -> None:
        for piece in pieces:
            call = self._calls.setdefault(piece.index, _Call())
            call.id = piece.id or call.id
            call.name += piece.name or ""
            call.arguments.append(piece.arguments)

    def _flush_calls(self, created_at: str) -> list[bytes]:
        if not self._calls:
            return []
        calls = [tool_call(n, call.id, call.name, "".join(call.arguments))
                 for n, (_, call) in enumerate(sorted(self._calls.items()))]
        self._calls.clear()
        return [self._line(created_at, "", tool_calls=calls)]

    def feed(self, payload: bytes, now_ns: int, created_at: str) -> list[bytes]:
        """The lines for one OpenAI chunk. UpstreamError when it cannot be read."""
        if self.finished:
            return []
        said = read(payload)
        self._tally.note(said)
        self._gather(said.tool_calls)
        lines = [self._piece_line(created_at, said.text, said.reasoning)] if said.text or said.reasoning else []
        if lines and self._first_ns is None:
            self._first_ns = now_ns
        if said.finish_reason:
            lines += self._flush_calls(created_at)
        return lines

    def done(self, prompt_tokens: int, completion_tokens: int, now_ns: int, created_at: str) -> list[bytes]:
        """The tool calls still gathered, then the done line."""
        if self.finished:
            return []
        lines = self._flush_calls(created_at)
        timings = Timings(now_ns - self._started_ns,
                          None if self._first_ns is None else self._first_ns - self._started_ns)
        prompt, completion = self._tally.usage(prompt_tokens, completion_tokens)
        counts = timings.fields(prompt or 0, completion or 0)
        self.finished = True
        return [*lines, self._line(created_at, "", final={"done_reason": done_reason(self._tally.finish), **counts})]

    def error(self, message: str) -> bytes:
        self.finished = True
        return error_body(message) + b"\n"
