"""An OpenAI answer said in Ollama's native API, whole: the bodies of /api/chat, /api/generate,
/api/embed and /api/embeddings with `stream: false`, and Ollama's error body. Pure.

Every answer echoes the model name as the client spelled it and carries Ollama's counters:
`prompt_eval_count` and `eval_count` are the backend's token counts; the durations are in
nanoseconds, measured by the gateway (`Timings`): `total_duration` from the request's arrival,
`prompt_eval_duration` until the first token when it is known, `eval_duration` the rest (at
least 1, since clients divide by it for tokens per second), `load_duration` 0.

The OpenAI objects are read by the front doors' one reader (openai_objects.py). Reasoning text
(vLLM's `reasoning_content`, or `reasoning`) becomes `thinking`; OpenAI's
tool calls, whose arguments are JSON text, become Ollama's, whose arguments are an object
(text that is not a JSON object is the backend's fault: a 502); `finish_reason` becomes
`done_reason` by shared/ollama_names.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec

from services.gateway.dialects import openai_objects
from services.gateway.dialects.ollama_request import Endpoint, Load
from services.gateway.dialects.openai_objects import Piece
from shared.errors import UpstreamError
from shared.ollama_names import done_reason

_decode = msgspec.json.decode
_encode = msgspec.json.encode


@dataclass(frozen=True)
class Timings:
    total_ns: int
    first_token_ns: int | None = None  # from the request's arrival; None when the answer came whole

    def fields(self, prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
        prompt_ns = min(self.first_token_ns or 0, self.total_ns)
        return {"total_duration": self.total_ns, "load_duration": 0, "prompt_eval_count": prompt_tokens,
                "prompt_eval_duration": prompt_ns, "eval_count": completion_tokens,
                "eval_duration": max(1, self.total_ns - prompt_ns)}


def error_body(message: str) -> bytes:
    return _encode({"error": message})


def arguments_object(text: str) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = _decode(text)
    except msgspec.DecodeError:
        value = None
    if not isinstance(value, dict):
        raise UpstreamError("the backend sent tool call arguments that are not a JSON object")
    return value


def tool_call(index: int, call_id: str | None, name: str | None, arguments: str) -> dict[str, Any]:
    call: dict[str, Any] = {"function": {"index": index, "name": name or "", "arguments": arguments_object(arguments)}}
    if call_id:
        call["id"] = call_id
    return call


def read(data: bytes) -> Piece:
    """One OpenAI object (openai_objects.read); UpstreamError when it is not JSON."""
    try:
        return openai_objects.read(data)
    except msgspec.DecodeError:
        raise UpstreamError("the backend sent an answer that is not JSON") from None


def message(content: str, thinking: str = "", tool_calls: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"role": "assistant", "content": content}
    if thinking:
        out["thinking"] = thinking
    if tool_calls:
        out["tool_calls"] = tool_calls
    return out


def generation_body(endpoint: Endpoint, data: bytes, model: str, created_at: str, timings: Timings,
                    prompt_tokens: int = 0, completion_tokens: int = 0) -> dict[str, Any]:
    """A whole chat completion or text completion as /api/chat's or /api/generate's answer; the
    frame's counts, else the body's `usage`."""
    said = read(data)
    counts = timings.fields(prompt_tokens or said.prompt_tokens or 0, completion_tokens or said.completion_tokens or 0)
    if endpoint == "chat":
        calls = [tool_call(n, c.id, c.name, c.arguments) for n, c in enumerate(said.tool_calls)]
        out: dict[str, Any] = {"model": model, "created_at": created_at,
                               "message": message(said.text, said.reasoning, calls)}
    else:
        out = {"model": model, "created_at": created_at, "response": said.text}
        if said.reasoning:
            out["thinking"] = said.reasoning
    return {**out, "done": True, "done_reason": done_reason(said.finish_reason), **counts}


def embed_body(endpoint: Endpoint, data: bytes, model: str, timings: Timings) -> dict[str, Any]:
    """An OpenAI embedding list as /api/embed's answer (or /api/embeddings', one vector)."""
    try:
        obj = _decode(data)
    except msgspec.DecodeError:
        raise UpstreamError("the backend sent an answer that is not JSON") from None
    listed = obj.get("data") if isinstance(obj, dict) else None
    items = sorted((d for d in listed if isinstance(d, dict)) if isinstance(listed, list) else (),
                   key=lambda d: int(d.get("index") or 0))
    vectors = [d.get("embedding") for d in items]
    if not all(isinstance(v, list) for v in vectors):
        raise UpstreamError("the backend's embeddings are not arrays of numbers")
    if endpoint == "embeddings":
        return {"embedding": vectors[0] if vectors else []}
    usage = obj.get("usage")
    prompt_tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else 0
    return {"model": model, "embeddings": vectors, "total_duration": timings.total_ns, "load_duration": 0,
            "prompt_eval_count": prompt_tokens if isinstance(prompt_tokens, int) else 0}


def load_body(endpoint: Endpoint, model: str, created_at: str, load: Load) -> dict[str, Any]:
    """The answer to a request that only (un)loads the model: Ollama's, with nothing generated."""
    if endpoint == "embed":
        return {"model": model, "embeddings": []}
    if endpoint == "embeddings":
        return {"embedding": []}
    said: dict[str, Any] = {"message": message("")} if endpoint == "chat" else {"response": ""}
    return {"model": model, "created_at": created_at, **said, "done": True, "done_reason": load}
