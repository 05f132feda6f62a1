"""OpenAI wire format as vLLM (and llama.cpp server, and Ollama under /v1) speaks it.

Pure: request bodies in, response bytes out; ids and timestamps are passed in.  The server
drives a reply through a small duck-typed interface (`stream`, `content_type`, `n`, `full`,
and for streams `prelude`, `event`, `tail`) so it can pace tokens without knowing the format.

Streams follow vLLM: a first chunk whose delta is ``{"role": "assistant", "content": ""}``,
one chunk per token, a chunk with an empty delta and the finish_reason, then (only with
``stream_options.include_usage``) a chunk with ``"choices": []`` and the usage, then
``data: [DONE]``.  With the ``reasoning`` knob a chat reply reasons first, as vLLM with a
reasoning parser: `THOUGHT` as ``reasoning_content`` (whole: ``message.reasoning_content``;
streamed: one chunk per word after the role chunk), counted in ``completion_tokens``.
Errors use vLLM's ``{"error": {message, type, param, code}}`` shape, or Ollama's variant of
it (lower-case types, ``code: null``) when ``ollama=True``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import struct
from http import HTTPStatus
from typing import Any

import orjson

from services.simulator.engine import content_text
from services.simulator.knobs import Knobs, Script, count_tokens, script
from services.simulator.tools import ToolCall, tool_call

JSON = b"application/json"
SSE = b"text/event-stream; charset=utf-8"
DONE = b"data: [DONE]\n\n"
THOUGHT = ("think0 ", "think1 ", "think2 ")
DEFAULT_DIMENSIONS = 8
MAX_DIMENSIONS = 4096


class WireError(Exception):
    """A request the real server would refuse; the server renders it in the route's dialect."""

    def __init__(self, status: int, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param


# vLLM names error types after the exception class it raised.
_VLLM_TYPES = {400: "BadRequestError", 404: "NotFoundError", 429: "RateLimitError",
               500: "InternalServerError", 503: "ServiceUnavailableError"}
_OLLAMA_TYPES = {400: "invalid_request_error", 404: "not_found_error"}


def error_body(status: int, message: str, param: str | None = None, *,
               ollama: bool = False) -> bytes:
    if ollama:
        err_type = _OLLAMA_TYPES.get(status, "api_error")
        code: int | None = None
    else:
        err_type = _VLLM_TYPES.get(status) or _type_from_phrase(status)
        code = status
    return orjson.dumps({"error": {"message": message, "type": err_type, "param": param,
                                   "code": code}})


def _type_from_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.replace(" ", "").replace("-", "") + "Error"
    except ValueError:
        return "APIError"


def model_not_found(model: str) -> WireError:
    return WireError(404, f"The model `{model}` does not exist.", "model")


# FastAPI's own answers for unrouted paths, which is what vLLM returns.
NOT_FOUND = orjson.dumps({"detail": "Not Found"})
METHOD_NOT_ALLOWED = orjson.dumps({"detail": "Method Not Allowed"})


def models_body(models: tuple[str, ...], created: int, owned_by: str = "vllm") -> bytes:
    return orjson.dumps({"object": "list", "data": [
        {"id": m, "object": "model", "created": created, "owned_by": owned_by} for m in models]})


# ----------------------------------------------------------------------------- request fields
def _opt_bool(body: dict[str, Any], key: str, default: bool) -> bool:
    v = body.get(key)
    if v is None:
        return default
    if not isinstance(v, bool):
        raise WireError(400, f"{key}: Input should be a valid boolean", key)
    return v


def _cap(body: dict[str, Any]) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        v = body.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int):
            raise WireError(400, f"{key}: Input should be a valid integer", key)
        if v < 1:
            raise WireError(400, f"max_tokens must be at least 1, got {v}.", key)
        return v
    return None


def _include_usage(body: dict[str, Any], stream: bool) -> bool:
    opts = body.get("stream_options")
    if opts is None:
        return False
    if not stream:
        raise WireError(400, "Stream options can only be defined when `stream=True`.",
                        "stream_options")
    if not isinstance(opts, dict):
        raise WireError(400, "stream_options: Input should be a valid dictionary",
                        "stream_options")
    return bool(opts.get("include_usage"))


def _messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    msgs = body.get("messages")
    if msgs is None:
        raise WireError(400, "messages: Field required", "messages")
    if not isinstance(msgs, list) or not msgs or not all(
            isinstance(m, dict) and isinstance(m.get("role"), str) for m in msgs):
        raise WireError(400, "messages: Input should be a non-empty list of messages with a role",
                        "messages")
    return msgs


def last_user_text(msgs: list[dict[str, Any]]) -> str:
    for m in reversed(msgs):
        if m.get("role") == "user":
            return content_text(m.get("content"))
    return ""


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _sse(obj: dict[str, Any]) -> bytes:
    return b"data: " + orjson.dumps(obj) + b"\n\n"


# ----------------------------------------------------------------------------- chat
class ChatReply:
    """With the `tool_call` knob and `tools` in the request, the reply is one tool call, streamed
    as vLLM does: id, type and name in the first tool-call delta, then argument pieces."""

    __slots__ = ("_head", "_include_usage", "_reasoning", "_s", "_tool", "_usage", "content_type", "n", "stream")

    def __init__(self, body: dict[str, Any], knobs: Knobs, model: str, rid: str,
                 created: int) -> None:
        msgs = _messages(body)
        self.stream = _opt_bool(body, "stream", False)
        self._include_usage = _include_usage(body, self.stream)
        self._s: Script = script(knobs, _cap(body), last_user_text(msgs))
        self._tool: ToolCall | None = tool_call(body, rid) if knobs.tool_call else None
        self.n = self._tool.n if self._tool else self._s.n
        self.content_type = SSE if self.stream else JSON
        prompt = sum(count_tokens(content_text(m.get("content"))) for m in msgs)
        self._reasoning = THOUGHT if knobs.reasoning else ()
        self._usage = _usage(prompt, self.n + len(self._reasoning))
        self._head = {"id": f"chatcmpl-{rid}", "object": "chat.completion", "created": created,
                      "model": model}

    @property
    def _finish(self) -> str:
        return "tool_calls" if self._tool else self._s.finish_reason

    def full(self, elapsed_ns: int) -> bytes:
        tool = self._tool
        message: dict[str, Any] = {"role": "assistant", "content": None if tool else self._s.text()}
        if self._reasoning:
            message["reasoning_content"] = "".join(self._reasoning)
        if tool:
            message["tool_calls"] = [{"id": tool.call_id, "type": "function", "function": {
                "name": tool.name, "arguments": tool.arguments_json}}]
        return orjson.dumps({**self._head, "choices": [{
            "index": 0, "message": message, "logprobs": None, "finish_reason": self._finish}],
            "usage": self._usage})

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> bytes:
        return _sse({**self._head, "object": "chat.completion.chunk", "choices": [
            {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]})

    def prelude(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""}, None) + b"".join(
            self._chunk({"reasoning_content": word}, None) for word in self._reasoning)

    def event(self, i: int) -> bytes:
        tool = self._tool
        if tool is None:
            return self._chunk({"content": self._s.piece(i)}, None)
        call: dict[str, Any] = {"index": 0, "function": {"arguments": tool.pieces[i]}}
        if i == 0:
            call = {"index": 0, "id": tool.call_id, "type": "function",
                    "function": {"name": tool.name, "arguments": tool.pieces[0]}}
        return self._chunk({"tool_calls": [call]}, None)

    def tail(self, elapsed_ns: int) -> bytes:
        out = self._chunk({}, self._finish)
        if self._include_usage:
            out += _sse({**self._head, "object": "chat.completion.chunk", "choices": [],
                         "usage": self._usage})
        return out + DONE


# ----------------------------------------------------------------------------- completions
def _prompts(body: dict[str, Any]) -> list[tuple[str, int]]:
    """(echo text, prompt token count) per prompt; a token array counts its length."""
    p = body.get("prompt")
    bad = WireError(400, "prompt: Input should be a string, a list of strings or token arrays",
                    "prompt")
    if isinstance(p, str):
        return [(p, count_tokens(p))]
    if not isinstance(p, list) or not p:
        raise bad
    if all(isinstance(x, int) and not isinstance(x, bool) for x in p):
        return [(" ".join(map(str, p)), len(p))]
    out: list[tuple[str, int]] = []
    for x in p:
        if isinstance(x, str):
            out.append((x, count_tokens(x)))
        elif isinstance(x, list) and x and all(isinstance(t, int) for t in x):
            out.append((" ".join(map(str, x)), len(x)))
        else:
            raise bad
    return out


class CompletionReply:
    """/v1/completions: one choice per prompt; streamed choices advance in lockstep."""

    __slots__ = ("_head", "_include_usage", "_scripts", "_usage", "content_type", "n", "stream")

    def __init__(self, body: dict[str, Any], knobs: Knobs, model: str, rid: str,
                 created: int) -> None:
        prompts = _prompts(body)
        self.stream = _opt_bool(body, "stream", False)
        self._include_usage = _include_usage(body, self.stream)
        cap = _cap(body)
        self._scripts = [script(knobs, cap, text) for text, _ in prompts]
        self.n = max(s.n for s in self._scripts)
        self.content_type = SSE if self.stream else JSON
        self._usage = _usage(sum(c for _, c in prompts), sum(s.n for s in self._scripts))
        self._head = {"id": f"cmpl-{rid}", "object": "text_completion", "created": created,
                      "model": model}

    def full(self, elapsed_ns: int) -> bytes:
        return orjson.dumps({**self._head, "choices": [
            {"index": k, "text": s.text(), "logprobs": None, "finish_reason": s.finish_reason}
            for k, s in enumerate(self._scripts)], "usage": self._usage})

    def _chunk(self, k: int, text: str, finish: str | None) -> bytes:
        return _sse({**self._head, "choices": [
            {"index": k, "text": text, "logprobs": None, "finish_reason": finish}]})

    def prelude(self) -> bytes:
        return b""

    def event(self, i: int) -> bytes:
        return b"".join(self._chunk(k, s.piece(i), None)
                        for k, s in enumerate(self._scripts) if i < s.n)

    def tail(self, elapsed_ns: int) -> bytes:
        out = b"".join(self._chunk(k, "", s.finish_reason) for k, s in enumerate(self._scripts))
        if self._include_usage:
            out += _sse({**self._head, "choices": [], "usage": self._usage})
        return out + DONE


# ----------------------------------------------------------------------------- embeddings
def embed_vector(text: str, dimensions: int = DEFAULT_DIMENSIONS) -> list[float]:
    """Deterministic unit vector from a hash of `text`: equal texts, equal vectors."""
    raw = bytearray()
    block = 0
    data = text.encode()
    while len(raw) < 4 * dimensions:
        raw += hashlib.blake2b(data, digest_size=64, salt=block.to_bytes(16, "little")).digest()
        block += 1
    vals = [x / 2**31 - 1.0 for x in struct.unpack_from(f"<{dimensions}I", raw)]
    norm = math.sqrt(sum(v * v for v in vals)) or 1.0
    return [v / norm for v in vals]


def dimensions_of(body: dict[str, Any]) -> int:
    d = body.get("dimensions")
    if d is None:
        return DEFAULT_DIMENSIONS
    if isinstance(d, bool) or not isinstance(d, int) or not 1 <= d <= MAX_DIMENSIONS:
        raise WireError(400, f"dimensions must be an integer in [1, {MAX_DIMENSIONS}]",
                        "dimensions")
    return d


class EmbeddingReply:
    """/v1/embeddings; ``encoding_format: base64`` matters because the openai SDK asks for it."""

    __slots__ = ("_b64", "_dims", "_head", "_inputs", "content_type", "n", "stream")

    def __init__(self, body: dict[str, Any], knobs: Knobs, model: str, rid: str,
                 created: int) -> None:
        raw = body.get("input")
        if raw is None:
            raise WireError(400, "input: Field required", "input")
        try:
            self._inputs = _prompts({"prompt": raw})
        except WireError:
            raise WireError(400, "input: Input should be a string, a list of strings or "
                                 "token arrays", "input") from None
        fmt = body.get("encoding_format") or "float"
        if fmt not in ("float", "base64"):
            raise WireError(400, "encoding_format must be 'float' or 'base64'", "encoding_format")
        self._b64 = fmt == "base64"
        self._dims = dimensions_of(body)
        self.stream = False
        self.n = 0
        self.content_type = JSON
        self._head = {"id": f"embd-{rid}", "object": "list", "created": created, "model": model}

    def full(self, elapsed_ns: int) -> bytes:
        data: list[dict[str, Any]] = []
        for k, (text, _) in enumerate(self._inputs):
            vec = embed_vector(text, self._dims)
            emb: object = (base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
                           if self._b64 else vec)
            data.append({"index": k, "object": "embedding", "embedding": emb})
        tokens = sum(c for _, c in self._inputs)
        return orjson.dumps({**self._head, "data": data,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})
