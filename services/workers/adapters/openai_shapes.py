"""OpenAI's response objects, built for adapters whose backend speaks another API.

Whatever backend answered, a client sees the same shapes: a chat stream opens with a chunk whose
delta carries `role`, then content or tool-call deltas, then one chunk with `finish_reason`,
then (only when the client asked with `stream_options.include_usage`) a chunk with
`"choices": []` and the usage. Every chunk of one response has the same id, created and model.
"""

from __future__ import annotations

import base64
import struct
from typing import Any, Literal

import msgspec

from services.workers.adapters.base import Usage

StreamKind = Literal["chat", "completion"]
_encode = msgspec.json.encode


def usage_object(usage: Usage) -> dict[str, int]:
    return {"prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
            "total_tokens": usage.prompt_tokens + usage.completion_tokens}


def wants_usage(body: dict[str, Any]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and bool(options.get("include_usage"))


def response_id(kind: StreamKind, attempt: str) -> str:
    # The attempt id is unique per call and already on every frame: no randomness needed here.
    return f"{'chatcmpl' if kind == 'chat' else 'cmpl'}-{attempt}"


def tool_call(index: int, call_id: str | None, name: str | None, arguments: str) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": arguments}
    if name is not None:
        function["name"] = name
    call: dict[str, Any] = {"index": index}
    if call_id is not None:
        call["id"] = call_id
        call["type"] = "function"
    call["function"] = function
    return call


class ChunkWriter:
    """The chunks of one streamed response."""

    def __init__(self, kind: StreamKind, response_id: str, created: int, model: str) -> None:
        self.kind = kind
        self._head: dict[str, Any] = {
            "id": response_id, "object": "chat.completion.chunk" if kind == "chat" else "text_completion",
            "created": created, "model": model}

    def _chat(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        return _encode({**self._head, "choices": [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    def _text(self, text: str, finish: str | None = None) -> bytes:
        return _encode({**self._head, "choices": [
            {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}]})

    def role(self) -> bytes:
        return self._chat({"role": "assistant", "content": ""})

    def content(self, text: str) -> bytes:
        return self._chat({"content": text}) if self.kind == "chat" else self._text(text)

    def reasoning(self, text: str) -> bytes:
        return self._chat({"reasoning_content": text})

    def tool_calls(self, calls: list[dict[str, Any]]) -> bytes:
        return self._chat({"tool_calls": calls})

    def finish(self, reason: str) -> bytes:
        return self._chat({}, reason) if self.kind == "chat" else self._text("", reason)

    def usage(self, usage: Usage) -> bytes:
        return _encode({**self._head, "choices": [], "usage": usage_object(usage)})


def chat_completion(response_id: str, created: int, model: str, content: str | None,
                    tool_calls: list[dict[str, Any]], finish_reason: str, usage: Usage,
                    reasoning: str | None = None) -> bytes:
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    if reasoning:
        message["reasoning_content"] = reasoning
    return _encode({"id": response_id, "object": "chat.completion", "created": created, "model": model,
                    "choices": [{"index": 0, "message": message, "logprobs": None, "finish_reason": finish_reason}],
                    "usage": usage_object(usage)})


def text_completion(response_id: str, created: int, model: str, text: str, finish_reason: str,
                    usage: Usage) -> bytes:
    return _encode({"id": response_id, "object": "text_completion", "created": created, "model": model,
                    "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": finish_reason}],
                    "usage": usage_object(usage)})


def floats_base64(vector: list[float]) -> str:
    """OpenAI's `encoding_format: base64`: little-endian float32, which the openai SDK asks for by default."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embedding_list(model: str, vectors: list[list[float]], prompt_tokens: int, as_base64: bool) -> bytes:
    data = [{"object": "embedding", "index": i, "embedding": floats_base64(v) if as_base64 else v}
            for i, v in enumerate(vectors)]
    return _encode({"object": "list", "data": data, "model": model,
                    "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens}})
