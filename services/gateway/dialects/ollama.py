"""Ollama's native API as a front door: one `Dialect` (dialects/__init__.py) per inference endpoint,
/api/chat, /api/generate, /api/embed and /api/embeddings. Pure: the clocks are injected.

The translations are ollama_request.py (the request), ollama_response.py (a whole answer) and
ollama_stream.py (NDJSON); this module joins them to the seam and adds what needs the config:
- the configured names, for the `:latest` rule;
- images: a model whose configured `capabilities` are listed without `vision` refuses them
  with a 400 naming the field; a model configured with none sends them to its backend, which
  judges;
- a request with nothing to generate (a load or unload) raises `Answered`: the route answers it
  at once, without the bus.
Errors are Ollama's `{"error": "..."}`, with the status of aiub's error tree; credentials come as
`Authorization: Bearer <key>` (the `ollama` library sends $OLLAMA_API_KEY so).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import msgspec

from services.gateway.dialects import Translated
from services.gateway.dialects.ollama_models import model_spec
from services.gateway.dialects.ollama_request import Endpoint, OllamaRequest, parse
from services.gateway.dialects.ollama_response import Timings, embed_body, error_body, generation_body, load_body
from services.gateway.dialects.ollama_stream import OllamaStream
from shared.config import Config
from shared.errors import BadRequest
from shared.messages import ErrorBody

NDJSON = "application/x-ndjson"
_encode = msgspec.json.encode


class Answered(Exception):  # not a failure: an answer given without the bus
    """The door answers this request itself (a model load or unload): `body` is the whole answer."""

    def __init__(self, body: bytes) -> None:
        super().__init__("answered by the door")
        self.body = body


_second: tuple[int, str] = (0, "1970-01-01T00:00:00")


def iso(epoch_s: float) -> str:
    """RFC 3339 in UTC to the microsecond, as Ollama dates its lines. Every streamed line is dated,
    so the date and time of the current second are formatted once, not per line."""
    global _second
    whole = int(epoch_s)
    if whole != _second[0]:
        _second = (whole, datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    fraction = f"{int((epoch_s - whole) * 1e6):06d}".rstrip("0")  # as Go's RFC3339Nano: no trailing zeros
    return f"{_second[1]}.{fraction}Z" if fraction else f"{_second[1]}Z"


def _images_at(request: OllamaRequest) -> str | None:
    """The field of the first message that carries images, if any."""
    for i, message in enumerate(request.body.get("messages") or ()):
        content = message.get("content")
        if isinstance(content, list) and any(part.get("type") == "image_url" for part in content):
            return "images" if request.endpoint == "generate" else f"messages[{i}].images"
    return None


class _Stream:
    """ollama_stream.OllamaStream behind the seam's StreamTranslator, stamping each line's time."""

    def __init__(self, stream: OllamaStream, now_ns: Callable[[], int], wall: Callable[[], float]) -> None:
        self._stream = stream
        self._now_ns = now_ns
        self._wall = wall

    def chunks(self, payloads: list[bytes]) -> bytes:
        at, now = iso(self._wall()), self._now_ns()
        return b"".join(line for payload in payloads for line in self._stream.feed(payload, now, at))

    def end(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        return b"".join(self._stream.done(prompt_tokens, completion_tokens, self._now_ns(), iso(self._wall())))

    def error(self, status: int, error: ErrorBody) -> bytes:
        return self._stream.error(error.message)


class OllamaDialect:
    name = "ollama"
    stream_media_type = NDJSON

    def __init__(self, endpoint: Endpoint, config: Config, now_ns: Callable[[], int] = time.monotonic_ns,
                 wall: Callable[[], float] = time.time) -> None:
        self.endpoint = endpoint
        self._config = config
        self._names = frozenset(config.public_models())
        self._max_messages = config.runtime.gateway.max_messages
        self._now_ns = now_ns
        self._wall = wall

    def authorization(self, headers: Mapping[str, str]) -> str | None:
        return headers.get("authorization")

    def _check_images(self, request: OllamaRequest) -> None:
        where = _images_at(request)
        if where is None:
            return
        _, spec = model_spec(self._config, request.body["model"])
        given = [c.lower() for c in spec.capabilities]
        if given and "vision" not in given:
            raise BadRequest(f"the model '{request.model}' does not take images (its configured capabilities: "
                             f"{', '.join(spec.capabilities)})", param=where)

    def parse(self, raw: bytes) -> Translated:
        started_ns = self._now_ns()
        request = parse(self.endpoint, raw, self._names, self._max_messages)
        if request.load is not None:
            raise Answered(_encode(load_body(self.endpoint, request.model, iso(self._wall()), request.load)))
        self._check_images(request)
        return Translated(kind=request.kind, body=request.body,
                          notes={"model": request.model, "started_ns": started_ns, "stream": request.stream})

    def _timings(self, notes: Mapping[str, Any]) -> Timings:
        return Timings(max(0, self._now_ns() - int(notes.get("started_ns", 0))))

    def result(self, translated: Translated, data: bytes) -> bytes:
        notes = translated.notes
        model = str(notes.get("model", ""))
        if self.endpoint in ("embed", "embeddings"):
            return _encode(embed_body(self.endpoint, data, model, self._timings(notes)))
        body = _encode(generation_body(self.endpoint, data, model, iso(self._wall()), self._timings(notes)))
        # A stream the backend answered whole: still one NDJSON line for a client reading lines.
        return body + b"\n" if notes.get("stream") else body

    def stream(self, translated: Translated) -> _Stream:
        notes = translated.notes
        stream = OllamaStream("chat" if self.endpoint == "chat" else "generate", str(notes.get("model", "")),
                              int(notes.get("started_ns", 0)))
        return _Stream(stream, self._now_ns, self._wall)

    def error(self, status: int, error: ErrorBody) -> bytes:
        return error_body(error.message)
