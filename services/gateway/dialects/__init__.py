"""Front doors: other clients' APIs translated to and from the one request/frame shape. Pure.

A dialect is one endpoint of a foreign API (Anthropic's `POST /v1/messages`, Ollama's
`POST /api/chat`, OpenAI's `POST /v1/responses`…). It translates, and does nothing else: no
I/O, no asyncio, no policies. Everything between the two translations is the chat path itself
(auth, limits, cache, routing, fallback, health, disconnects, metrics, records), so a dialect
never gets a second path.

    client body ──parse──▶ Translated(kind, OpenAI body[, native body]) ──▶ infer() as for OpenAI
    client ◀── result(): one OpenAI object → the dialect's body            (a Result frame, a cache hit)
    client ◀── stream(): OpenAI chunk objects → the dialect's events       (Chunk frames, a cached stream)
    client ◀── error(): status + OpenAI ErrorBody → the dialect's error    (anything raised, an Error frame)

How a dialect plugs in:

1. Write a class satisfying `Dialect` below (one instance per endpoint; make it a module-level
   constant, it holds no per-request state). `parse` raises the tree's `BadRequest` (or
   `ModelNotFound`...) with `param` naming *the dialect's* field, never a KeyError.
2. Route it: a module of yours (e.g. dialects/ollama_routes.py) with `add_routes(app, state)`
   whose handlers end in
       return await infer(state, request, dialect=MY_DIALECT)
   and one line calling it in `_add_dialect_routes` in services/gateway/app.py.
   `infer` sets `request.state.dialect` first thing, so every exception raised while the request
   runs (auth, body size, validation, limits) is answered by `MY_DIALECT.error`, in your shape.
   A handler that must authenticate or read the body before inferring (the Responses door looks
   up `previous_response_id` first) passes `received=Received(principal, raw)`: infer then
   neither reads the key store nor the body again.
3. A route of yours that is not inference (a model list, a version, a stored object) calls
   `use(request, MY_DIALECT)` first for the same effect on its errors, and authenticates with
   `state.policies.auth.authenticate(MY_DIALECT.authorization(request.headers))`.

Cache entries stay in OpenAI form (one `Result` body, or a stream's chunk objects) and are
replayed through the same `result`/`stream` of whichever dialect asks; with a `native` body the
key covers it too (a foreign field with no OpenAI equivalent must not share an answer).
The OpenAI endpoints pass `dialect=None`: their path is the one it always was.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from starlette.requests import Request

from shared.messages import ErrorBody, RequestKind


@dataclass(frozen=True)
class Translated:
    """A dialect's request, said in OpenAI's terms."""

    kind: RequestKind
    body: dict[str, Any]  # an OpenAI request body (it must pass validation.check, as an OpenAI client's would)
    # The client's own body, for a provider that speaks this dialect natively (`native_dialect`
    # names it): the worker sends it instead of translating `body` back. None: always translate.
    native: dict[str, Any] | None = None
    native_dialect: str | None = None
    # Whatever the answer's translation needs to know about the request (the model name the client
    # used, a flag it set): the dialect's own, opaque to everyone else.
    notes: Mapping[str, Any] = field(default_factory=dict)


class StreamTranslator(Protocol):
    """One streamed answer. Each method returns the bytes to send (b"" for nothing), framed."""

    def chunks(self, payloads: list[bytes]) -> bytes:
        """OpenAI chunk objects (JSON bytes, as the frames carry them) → the dialect's events."""

    def end(self, prompt_tokens: int, completion_tokens: int) -> bytes:
        """The stream finished well (the `Done` frame): the dialect's closing events."""

    def error(self, status: int, error: ErrorBody) -> bytes:
        """The stream failed after it started: the dialect's error event, and whatever ends it."""


class Dialect(Protocol):
    name: str  # "anthropic", "ollama", "responses": in logs
    stream_media_type: str  # "text/event-stream", "application/x-ndjson"

    def authorization(self, headers: Mapping[str, str]) -> str | None:
        """The credential, as an `Authorization` header value (`Bearer <key>`), from wherever this
        dialect's clients send it; None when there is none."""

    def parse(self, raw: bytes) -> Translated:
        """The request body (bytes, as received) in OpenAI's terms; BadRequest naming the field."""

    def result(self, translated: Translated, data: bytes) -> bytes:
        """A whole OpenAI answer (chat.completion, text_completion, embeddings list) → the dialect's body."""

    def stream(self, translated: Translated) -> StreamTranslator:
        """A translator for one streamed answer."""

    def error(self, status: int, error: ErrorBody) -> bytes:
        """An error (any class of the tree, or a backend's relayed) as the dialect's JSON body; the
        HTTP status stays the tree's."""


def use(request: Request, dialect: Dialect) -> None:
    """Errors raised from here on in this request are answered in `dialect`'s shape."""
    request.state.dialect = dialect


def of(request: Request) -> Dialect | None:
    """The dialect this request speaks, if not OpenAI's."""
    return getattr(request.state, "dialect", None)
