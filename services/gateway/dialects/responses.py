"""The OpenAI Responses front door: `POST /v1/responses` as a Dialect (dialects/__init__.py). Pure.

Unlike the other doors, one instance serves one request: it carries the response's id and
creation time, the earlier turn's items (`previous_response_id`, looked up by the route before
the body is parsed), and it keeps the final Response (`final`) so the route can store it after
the answer. Everything else is as for any door: the chat path runs between `parse` and
`result`/`stream`, and a cached answer is replayed through them under a fresh id.

Translate, not pass through: a backend that serves `/v1/responses` itself (vLLM, OpenAI) still
gets a chat request. One request shape keeps routing, fallback, the cache, limits, records and
health the same for every door, any backend serves this door (Ollama, llama.cpp, Anthropic), and
`previous_response_id` works across providers and fallbacks, since aiub, not the backend that
answered the last turn, keeps the conversation (docs/front-doors.md).

Credentials: `Authorization: Bearer`, as the OpenAI SDK sends them. Errors: OpenAI's JSON.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from services.gateway.dialects import Translated
from services.gateway.dialects.ollama_models import model_spec
from services.gateway.dialects.responses_answer import result
from services.gateway.dialects.responses_request import translate
from services.gateway.dialects.responses_stream import ResponseStream
from shared.config import Config
from shared.errors import BadRequest, error_json
from shared.messages import ErrorBody

_encode = msgspec.json.encode


class ResponsesDoor:
    name = "responses"
    stream_media_type = "text/event-stream; charset=utf-8"

    def __init__(self, config: Config, response_id: str, created_at: int,
                 earlier: Sequence[dict[str, Any]] = ()) -> None:
        self._config = config
        self._id = response_id
        self._created_at = created_at
        self._earlier = earlier
        self._whole: dict[str, Any] | None = None
        self._stream: ResponseStream | None = None
        self.notes: Mapping[str, Any] | None = None  # the request's, once parsed

    @property
    def final(self) -> dict[str, Any] | None:
        """The Response the client got in full (a whole answer, or a stream's last event); else None."""
        if self._stream is not None:
            return self._stream.final
        return self._whole

    def authorization(self, headers: Mapping[str, str]) -> str | None:
        return headers.get("authorization")

    def parse(self, raw: bytes) -> Translated:
        translated = translate(raw, response_id=self._id, created_at=self._created_at, earlier=self._earlier)
        where = translated.notes.get("image_at")
        if where is not None:
            _, spec = model_spec(self._config, translated.notes["model"])
            given = [c.lower() for c in spec.capabilities]
            if given and "vision" not in given:
                raise BadRequest(f"{where}: the model '{translated.notes['model']}' does not take images (its "
                                 f"configured capabilities: {', '.join(spec.capabilities)})", param=where)
        self.notes = translated.notes
        return translated

    def result(self, translated: Translated, data: bytes) -> bytes:
        self._whole = result(translated.notes, data)
        return _encode(self._whole)

    def stream(self, translated: Translated) -> ResponseStream:
        self._stream = ResponseStream(translated.notes)
        return self._stream

    def error(self, status: int, error: ErrorBody) -> bytes:
        return error_json(error)
