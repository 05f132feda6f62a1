"""Ollama's native replies turned into OpenAI's, streamed or whole.

A stream is NDJSON: one JSON object per line, `done: false` with a piece of the message, and a
last line with `done: true`, `done_reason` and the counters (`prompt_eval_count`,
`eval_count`). A line `{"error": "..."}` is a failure reported mid-stream. Rules:
- a chat stream starts with a role chunk; every non-empty piece becomes one content chunk;
  `thinking` becomes `reasoning_content`; tool calls (arguments are objects in Ollama) become
  `tool_calls` deltas with JSON-string arguments and an index that counts across the stream;
- `done_reason` becomes `finish_reason`: `length` stays, `stop` (and `load`/`unload`) is
  `stop`, and any tool call makes it `tool_calls` (as Ollama's own /v1 layer reports);
- the usage chunk follows only when the client asked for it; the stream is finished only at
  the `done: true` line, so a cut stream is detected by the worker.
"""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from services.workers.adapters.base import StreamBroken, StreamProgress, Usage
from services.workers.adapters.openai_request import decode_object, field
from services.workers.adapters.openai_shapes import (
    ChunkWriter,
    chat_completion,
    embedding_list,
    text_completion,
    tool_call,
)
from shared.ollama_names import finish_reason

_encode = msgspec.json.encode
MAX_LINE = 16 * 1024 * 1024


def usage_of(obj: dict[str, Any]) -> Usage:
    return Usage(int(obj.get("prompt_eval_count") or 0), int(obj.get("eval_count") or 0))


def _call_id(seed: str, index: int) -> str:
    # Older Ollama versions send no id; OpenAI clients need one to answer the call.
    return "call_" + hashlib.blake2b(f"{seed}:{index}".encode(), digest_size=8).hexdigest()


def convert_tool_calls(calls: object, first_index: int, seed: str) -> list[dict[str, Any]]:
    if not isinstance(calls, list):
        return []
    out = []
    for offset, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            raise StreamBroken("tool call without a function")
        index = first_index + offset
        call_id = call.get("id") if isinstance(call.get("id"), str) and call.get("id") else _call_id(seed, index)
        arguments = function.get("arguments")
        text = arguments if isinstance(arguments, str) else _encode(arguments or {}).decode()
        out.append(tool_call(index, call_id, str(function.get("name") or ""), text))
    return out


class NDJSONLines:
    """Complete JSON lines out of arbitrary byte slices."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, raw: bytes) -> list[dict[str, Any]]:
        self._buffer += raw
        if len(self._buffer) > MAX_LINE:
            raise StreamBroken("an NDJSON line exceeds the buffer limit")
        *lines, self._buffer = self._buffer.split(b"\n")
        return [decode_object(line, "NDJSON line") for line in lines if line.strip()]


class OllamaStream(StreamProgress):
    def __init__(self, writer: ChunkWriter, include_usage: bool, call_seed: str) -> None:
        super().__init__()
        self._writer = writer
        self._include_usage = include_usage
        self._seed = call_seed
        self._lines = NDJSONLines()
        self._role_sent = writer.kind != "chat"
        self._tool_calls = 0

    def feed(self, raw: bytes) -> list[bytes]:
        out: list[bytes] = []
        for obj in self._lines.feed(raw):
            if self._done:
                break
            if "error" in obj:
                raise StreamBroken(f"backend reported an error mid-stream: {obj['error']}")
            out.extend(self._line(obj))
        self.content_events += len(out)
        return out

    def _line(self, obj: dict[str, Any]) -> list[bytes]:
        writer = self._writer
        chunks = []
        if not self._role_sent:
            chunks.append(writer.role())
            self._role_sent = True
        if writer.kind == "chat":
            message = field(obj, "message")
            if message.get("thinking"):
                chunks.append(writer.reasoning(str(message["thinking"])))
            if message.get("content"):
                chunks.append(writer.content(str(message["content"])))
            calls = convert_tool_calls(message.get("tool_calls"), self._tool_calls, self._seed)
            if calls:
                self._tool_calls += len(calls)
                chunks.append(writer.tool_calls(calls))
        elif obj.get("response"):
            chunks.append(writer.content(str(obj["response"])))
        if obj.get("done"):
            self.usage = usage_of(obj)
            chunks.append(writer.finish(finish_reason(obj.get("done_reason"), self._tool_calls > 0)))
            if self._include_usage:
                chunks.append(writer.usage(self.usage))
            self._done = True
        return chunks


def chat_result(body: bytes, response_id: str, created: int, model: str) -> tuple[bytes, Usage]:
    obj = decode_object(body, "response")
    message = field(obj, "message")
    # A whole message's tool calls have no stream index.
    calls = [{k: v for k, v in call.items() if k != "index"}
             for call in convert_tool_calls(message.get("tool_calls"), 0, response_id)]
    content = str(message.get("content") or "")
    usage = usage_of(obj)
    data = chat_completion(response_id, created, model, content if content or not calls else None, calls,
                           finish_reason(obj.get("done_reason"), bool(calls)), usage,
                           str(message["thinking"]) if message.get("thinking") else None)
    return data, usage


def generate_result(body: bytes, response_id: str, created: int, model: str) -> tuple[bytes, Usage]:
    obj = decode_object(body, "response")
    usage = usage_of(obj)
    return text_completion(response_id, created, model, str(obj.get("response") or ""),
                           finish_reason(obj.get("done_reason"), False), usage), usage


def embed_result(body: bytes, model: str, as_base64: bool) -> tuple[bytes, Usage]:
    obj = decode_object(body, "response")
    vectors = obj.get("embeddings")
    if not isinstance(vectors, list) or not all(isinstance(v, list) for v in vectors):
        raise StreamBroken("the embeddings response has no 'embeddings' array")
    usage = Usage(int(obj.get("prompt_eval_count") or 0), 0)
    return embedding_list(model, vectors, usage.prompt_tokens, as_base64), usage


def model_names(body: bytes) -> list[str]:
    obj = decode_object(body, "model list")
    models = obj.get("models")
    if not isinstance(models, list):
        raise StreamBroken("the model list has no 'models' array")
    return [str(m.get("name") or m.get("model")) for m in models if isinstance(m, dict) and (m.get("name") or
                                                                                            m.get("model"))]
