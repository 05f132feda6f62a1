"""Ollama's native wire format (/api/chat, /api/generate, /api/embed, /api/tags).

Pure, like openai_wire, and driven through the same reply interface.  Ollama differs from the
OpenAI format in ways gateways trip over, so they are kept faithfully:
  * ``stream`` defaults to TRUE; a stream is NDJSON (one JSON object per line), and its last
    line carries ``done: true``, ``done_reason`` and the nanosecond counters;
  * ``options.num_predict`` caps tokens (<= 0 means no cap);
  * a request with no messages (chat) or an empty prompt (generate) only "loads" the model and
    gets one object with ``done_reason: "load"``, even when streaming was asked for;
  * a model name without a tag means ``:latest``; responses echo the name as requested;
  * errors are ``{"error": "..."}``;
  * ``think`` (true, or a level such as "high") makes a thinking model reason first: the reply's
    ``thinking`` is `THOUGHT` (chat: ``message.thinking``; generate: ``thinking``), streamed as
    one line per word before the content, and not counted in ``eval_count``.
Ollama also serves the OpenAI API under /v1; the server uses openai_wire for that.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

from services.simulator.engine import content_text
from services.simulator.knobs import Knobs, Script, count_tokens, script
from services.simulator.openai_wire import WireError, dimensions_of, embed_vector
from services.simulator.tools import tool_call

JSON = b"application/json; charset=utf-8"
NDJSON = b"application/x-ndjson"
ROOT = b"Ollama is running"
VERSION = orjson.dumps({"version": "0.6.8"})
# gin's answers for unrouted paths.
NOT_FOUND = b"404 page not found"
METHOD_NOT_ALLOWED = b"405 method not allowed"

Clock = Callable[[], str]
THOUGHT = ("think0 ", "think1 ", "think2 ")


def iso_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def error_body(message: str) -> bytes:
    return orjson.dumps({"error": message})


def model_not_found(model: str) -> WireError:
    return WireError(404, f'model "{model}" not found, try pulling it first')


def accepted_names(models: tuple[str, ...]) -> frozenset[str]:
    """Every spelling Ollama resolves to a served model: 'llama3' and 'llama3:latest' alike."""
    names: set[str] = set()
    for m in models:
        full = m if ":" in m else f"{m}:latest"
        names.add(full)
        if full.endswith(":latest"):
            names.add(full[: -len(":latest")])
    return frozenset(names)


def _details(name: str) -> dict[str, Any]:
    base, _, tag = name.partition(":")
    family = re.match(r"[a-z]+", base.rsplit("/", 1)[-1].lower())
    size = re.fullmatch(r"(\d+(?:\.\d+)?)b", tag.lower())
    return {"parent_model": "", "format": "gguf",
            "family": family.group(0) if family else "unknown",
            "families": [family.group(0)] if family else None,
            "parameter_size": f"{size.group(1)}B" if size else "unknown",
            "quantization_level": "Q4_K_M"}


def tags_body(models: tuple[str, ...], modified_at: str) -> bytes:
    out = []
    for m in models:
        name = m if ":" in m else f"{m}:latest"
        out.append({"name": name, "model": name, "modified_at": modified_at,
                    "size": 4_920_753_328, "digest": hashlib.sha256(name.encode()).hexdigest(),
                    "details": _details(name)})
    return orjson.dumps({"models": out})


# ----------------------------------------------------------------------------- request fields
def _stream(body: dict[str, Any]) -> bool:
    v = body.get("stream")
    if v is None:
        return True
    if not isinstance(v, bool):
        raise WireError(400, "json: cannot unmarshal stream into Go struct field of type bool")
    return v


def _num_predict(body: dict[str, Any]) -> int | None:
    opts = body.get("options")
    if opts is None:
        return None
    if not isinstance(opts, dict):
        raise WireError(400, "json: cannot unmarshal options into Go struct field of type map")
    n = opts.get("num_predict")
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int):
        raise WireError(400, "option \"num_predict\" must be of type integer")
    return n if n > 0 else None


class _Generation:
    """Shared by /api/chat and /api/generate; they differ only in where the text goes."""

    __slots__ = (
        "_load",
        "_model",
        "_now",
        "_prompt_tokens",
        "_s",
        "_thinks",
        "_ttft_ns",
        "content_type",
        "n",
        "stream",
    )

    def __init__(self, body: dict[str, Any], knobs: Knobs, model: str, source: str,
                 prompt_tokens: int, load_only: bool, now: Clock) -> None:
        self._load = load_only
        self.stream = _stream(body) and not load_only
        self._s: Script = script(knobs, _num_predict(body), source)
        self.n = 0 if load_only else self._s.n
        self.content_type = NDJSON if self.stream else JSON
        self._model = model
        self._now = now
        self._prompt_tokens = prompt_tokens
        self._ttft_ns = int(knobs.ttft_ms * 1e6)
        think = body.get("think")
        self._thinks = not load_only and think is not None and think is not False

    def _payload(self, text: str, thinking: str = "") -> dict[str, Any]:
        raise NotImplementedError

    def _done(self, text: str, elapsed_ns: int) -> dict[str, Any]:
        d = {"model": self._model, "created_at": self._now(), **self._payload(text), "done": True}
        if self._load:
            d["done_reason"] = "load"
            return d
        prompt_ns = min(self._ttft_ns, elapsed_ns)
        d.update(done_reason=self._s.finish_reason, total_duration=elapsed_ns, load_duration=0,
                 prompt_eval_count=self._prompt_tokens, prompt_eval_duration=prompt_ns,
                 eval_count=self._s.n,
                 # clients divide by eval_duration to report tokens/s
                 eval_duration=max(1, elapsed_ns - prompt_ns))
        return d

    def full(self, elapsed_ns: int) -> bytes:
        text = "" if self._load else self._s.text()
        done = self._done(text, elapsed_ns)
        if self._thinks:
            done.update(self._payload(text, "".join(THOUGHT)))
        return orjson.dumps(done)

    def prelude(self) -> bytes:
        if not self._thinks:
            return b""
        return b"".join(orjson.dumps({"model": self._model, "created_at": self._now(),
                                      **self._payload("", word), "done": False}) + b"\n" for word in THOUGHT)

    def event(self, i: int) -> bytes:
        return orjson.dumps({"model": self._model, "created_at": self._now(),
                             **self._payload(self._s.piece(i)), "done": False}) + b"\n"

    def tail(self, elapsed_ns: int) -> bytes:
        return orjson.dumps(self._done("", elapsed_ns)) + b"\n"


class ChatReply(_Generation):
    """With the `tool_call` knob and `tools` in the request, the reply is one tool call: as
    Ollama does, the whole call (arguments as an object) in one line, then the done line."""

    __slots__ = ("_tool",)

    def __init__(self, body: dict[str, Any], knobs: Knobs, model: str,
                 now: Clock = iso_now, rid: str = "") -> None:
        msgs = body.get("messages") or []
        if not isinstance(msgs, list) or not all(isinstance(m, dict) for m in msgs):
            raise WireError(400, "invalid message format")
        last_user = next((content_text(m.get("content")) for m in reversed(msgs)
                          if m.get("role") == "user"), "")
        prompt = sum(count_tokens(content_text(m.get("content"))) for m in msgs)
        super().__init__(body, knobs, model, last_user, prompt, not msgs, now)
        self._tool = tool_call(body, rid) if knobs.tool_call and msgs else None
        if self._tool is not None:
            self.n = 1
            self._s = Script(self._tool.n, "stop", None)

    def _payload(self, text: str, thinking: str = "") -> dict[str, Any]:
        message = {"role": "assistant", "content": text}
        return {"message": {**message, "thinking": thinking} if thinking else message}

    def _tool_payload(self) -> dict[str, Any]:
        assert self._tool is not None
        return {"message": {"role": "assistant", "content": "", "tool_calls": [{
            "id": self._tool.call_id,
            "function": {"index": 0, "name": self._tool.name, "arguments": self._tool.arguments}}]}}

    def full(self, elapsed_ns: int) -> bytes:
        if self._tool is None:
            return super().full(elapsed_ns)
        return orjson.dumps({**self._done("", elapsed_ns), **self._tool_payload()})

    def event(self, i: int) -> bytes:
        if self._tool is None:
            return super().event(i)
        return orjson.dumps({"model": self._model, "created_at": self._now(), **self._tool_payload(),
                             "done": False}) + b"\n"


class GenerateReply(_Generation):
    __slots__ = ()

    def __init__(self, body: dict[str, Any], knobs: Knobs, model: str,
                 now: Clock = iso_now) -> None:
        prompt = body.get("prompt") or ""
        if not isinstance(prompt, str):
            raise WireError(400, "json: cannot unmarshal prompt into Go struct field of type string")
        super().__init__(body, knobs, model, prompt, count_tokens(prompt), not prompt, now)

    def _payload(self, text: str, thinking: str = "") -> dict[str, Any]:
        return {"response": text, "thinking": thinking} if thinking else {"response": text}


class EmbedReply:
    """/api/embed (batch, ``embeddings``) and the legacy /api/embeddings (``embedding``)."""

    __slots__ = ("_dims", "_inputs", "_legacy", "_model", "content_type", "n", "stream")

    def __init__(self, body: dict[str, Any], knobs: Knobs, model: str,
                 legacy: bool = False) -> None:
        raw = body.get("prompt" if legacy else "input")
        if raw is None or raw == "":
            inputs: list[str] = []
        elif isinstance(raw, str):
            inputs = [raw]
        elif isinstance(raw, list) and all(isinstance(x, str) for x in raw) and not legacy:
            inputs = raw
        else:
            raise WireError(400, "invalid input type")
        self._inputs = inputs
        self._dims = dimensions_of(body)
        self._model = model
        self._legacy = legacy
        self.stream = False
        self.n = 0
        self.content_type = JSON

    def full(self, elapsed_ns: int) -> bytes:
        vecs = [embed_vector(t, self._dims) for t in self._inputs]
        if self._legacy:
            return orjson.dumps({"embedding": vecs[0] if vecs else []})
        return orjson.dumps({"model": self._model, "embeddings": vecs,
                             "total_duration": elapsed_ns, "load_duration": 0,
                             "prompt_eval_count": sum(count_tokens(t) for t in self._inputs)})
