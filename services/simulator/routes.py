"""Which path answers what, per flavor, and in which dialect errors are written.

Flavors: `openai` (vLLM: /v1/* and /health), `ollama` (native /api/* plus its OpenAI layer
under /v1) and `anthropic` (/v1/messages, /v1/models). A model route builds a reply object
(see openai_wire's docstring); a simple route answers at once. /_sim/* are the control routes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import orjson

from services.simulator import anthropic_wire, ollama_wire, openai_wire
from services.simulator.knobs import Knobs, merge
from services.simulator.reply import Reply
from services.simulator.settings import Flavor, SimulatorSettings

Dialect = Literal["vllm", "ollama", "ollama_v1", "anthropic"]
Build = Callable[[dict[str, Any], Knobs, str, str, int], Reply]
Response = tuple[int, bytes, bytes]  # status, content type, body


class Stats(Protocol):
    def reset(self) -> None: ...
    def as_dict(self) -> dict[str, Any]: ...


class App(Protocol):
    """What the control routes and the auth check read of the simulator (app.App, the module above)."""

    settings: SimulatorSettings
    knobs: Knobs

    @property
    def stats(self) -> Stats: ...


Simple = Callable[[App, bytes], Response]
TEXT = b"text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class ModelRoute:
    build: Build
    dialect: Dialect


def _openai_routes(dialect: Dialect, owned_by: str) -> dict[str, dict[str, Any]]:
    return {
        "/v1/chat/completions": {"POST": ModelRoute(openai_wire.ChatReply, dialect)},
        "/v1/completions": {"POST": ModelRoute(openai_wire.CompletionReply, dialect)},
        "/v1/embeddings": {"POST": ModelRoute(openai_wire.EmbeddingReply, dialect)},
        "/v1/models": {"GET": lambda app, _b: (200, openai_wire.JSON, openai_wire.models_body(
            app.settings.models, app.started, owned_by))},
    }


def _ollama_routes() -> dict[str, dict[str, Any]]:
    table = _openai_routes("ollama_v1", "library")
    table.update({
        "/": {"GET": lambda _a, _b: (200, TEXT, ollama_wire.ROOT)},
        "/api/version": {"GET": lambda _a, _b: (200, ollama_wire.JSON, ollama_wire.VERSION)},
        "/api/tags": {"GET": lambda app, _b: (200, ollama_wire.JSON, ollama_wire.tags_body(
            app.settings.models, app.started_iso))},
        "/api/chat": {"POST": ModelRoute(
            lambda b, k, m, r, _c: ollama_wire.ChatReply(b, k, m, rid=r), "ollama")},
        "/api/generate": {"POST": ModelRoute(
            lambda b, k, m, _r, _c: ollama_wire.GenerateReply(b, k, m), "ollama")},
        "/api/embed": {"POST": ModelRoute(
            lambda b, k, m, _r, _c: ollama_wire.EmbedReply(b, k, m), "ollama")},
        "/api/embeddings": {"POST": ModelRoute(
            lambda b, k, m, _r, _c: ollama_wire.EmbedReply(b, k, m, legacy=True), "ollama")},
    })
    return table


def _anthropic_routes() -> dict[str, dict[str, Any]]:
    return {
        "/v1/messages": {"POST": ModelRoute(anthropic_wire.MessagesReply, "anthropic")},
        "/v1/models": {"GET": lambda app, _b: (200, anthropic_wire.JSON, anthropic_wire.models_body(
            app.settings.models, app.started_iso))},
    }


def routes(flavor: Flavor) -> dict[str, dict[str, Any]]:
    if flavor == "openai":
        table = _openai_routes("vllm", "vllm")
        table["/health"] = {"GET": lambda _a, _b: (200, TEXT, b"")}
    elif flavor == "ollama":
        table = _ollama_routes()
    else:
        table = _anthropic_routes()
    table["/_sim/stats"] = {"GET": lambda app, _b: (200, openai_wire.JSON,
                                                    orjson.dumps(app.stats.as_dict()))}
    table["/_sim/knobs"] = {"GET": _get_knobs, "POST": _post_knobs}
    table["/_sim/reset"] = {"POST": _reset}
    return table


def _get_knobs(app: App, _body: bytes) -> Response:
    return 200, openai_wire.JSON, orjson.dumps(app.knobs.as_dict())


def _post_knobs(app: App, body: bytes) -> Response:
    try:
        app.knobs = merge(app.knobs, orjson.loads(body or b"{}"))
    except (ValueError, orjson.JSONDecodeError) as exc:
        return 400, openai_wire.JSON, orjson.dumps({"error": str(exc)})
    return _get_knobs(app, body)


def _reset(app: App, _body: bytes) -> Response:
    app.stats.reset()
    return 200, openai_wire.JSON, orjson.dumps(app.stats.as_dict())


def error_response(dialect: Dialect, status: int, message: str,
                   param: str | None = None) -> tuple[bytes, bytes]:
    if dialect == "ollama":
        return ollama_wire.JSON, ollama_wire.error_body(message)
    if dialect == "anthropic":
        return anthropic_wire.JSON, anthropic_wire.error_body(status, message)
    return openai_wire.JSON, openai_wire.error_body(status, message, param,
                                                    ollama=dialect == "ollama_v1")


def unrouted(flavor: Flavor, status: int) -> tuple[bytes, bytes]:
    """The body a flavor's real server sends for an unknown path (404) or method (405)."""
    if flavor == "ollama":
        return TEXT, ollama_wire.NOT_FOUND if status == 404 else ollama_wire.METHOD_NOT_ALLOWED
    if flavor == "anthropic":
        return anthropic_wire.JSON, anthropic_wire.NOT_FOUND if status == 404 else anthropic_wire.METHOD_NOT_ALLOWED
    return openai_wire.JSON, openai_wire.NOT_FOUND if status == 404 else openai_wire.METHOD_NOT_ALLOWED


def auth_failure(app: App, headers: dict[str, bytes]) -> Response | None:
    """Refuse a request without the credentials its flavor's real server demands."""
    key = app.settings.api_key
    flavor = app.settings.flavor
    if flavor == "anthropic":
        given = headers.get("x-api-key")
        if not given:
            return 401, anthropic_wire.JSON, anthropic_wire.error_body(401, "x-api-key header is required")
        if key is not None and given.decode("latin-1") != key:
            return 401, anthropic_wire.JSON, anthropic_wire.error_body(401, "invalid x-api-key")
        if not headers.get(anthropic_wire.VERSION_HEADER):
            return 400, anthropic_wire.JSON, anthropic_wire.error_body(400, "anthropic-version: header is required")
        return None
    if key is None or headers.get("authorization", b"").decode("latin-1") == f"Bearer {key}":
        return None
    if flavor == "ollama":
        return 401, ollama_wire.JSON, ollama_wire.error_body("unauthorized")
    return 401, openai_wire.JSON, orjson.dumps({"error": {
        "message": "Incorrect API key provided.", "type": "invalid_request_error", "param": None,
        "code": "invalid_api_key"}})
