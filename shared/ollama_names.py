"""What Ollama's native API and OpenAI's call the same thing, read in both directions. Pure.

Two translators read this: the workers say an OpenAI request in Ollama's API for an Ollama
backend (services/workers/adapters/ollama_request.py, ollama_response.py), and the gateway's
Ollama front door says an Ollama client's request in OpenAI's (services/gateway/dialects/).
One table, so the two directions cannot drift apart:

    OpenAI (top-level field)                      Ollama
    temperature, top_p, seed, frequency_penalty,  options.<same name>
    presence_penalty, top_k, min_p,
    repeat_penalty, typical_p
    max_tokens / max_completion_tokens            options.num_predict
    stop (string or array)                        options.stop (array)
    response_format {"type": "json_object"}       format: "json"
    response_format {"type": "json_schema",       format: <the schema>
                     "json_schema": {"schema"}}
    finish_reason stop / length / tool_calls      done_reason stop / length / stop

Ollama reports `stop` when a turn ends in tool calls (its own /v1 layer says `tool_calls`), and
`load`/`unload` for a request that only (un)loaded the model; both read as OpenAI's `stop`.
"""

from __future__ import annotations

from typing import Any

# Sampling options spelled the same in both APIs (OpenAI's top level, Ollama's `options`); the
# last four are llama.cpp's and vLLM's extensions to OpenAI's body.
SAMPLING = ("temperature", "top_p", "seed", "frequency_penalty", "presence_penalty", "top_k", "min_p",
            "repeat_penalty", "typical_p")
NUM_PREDICT = "num_predict"
# Ollama's own request fields an Ollama backend understands as they are.
PASSTHROUGH = ("keep_alive", "think")
JSON_MODE = "json"


def finish_reason(done_reason: object, tool_calls: bool) -> str:
    """Ollama's `done_reason` as OpenAI's `finish_reason`."""
    if tool_calls:
        return "tool_calls"
    return "length" if done_reason == "length" else "stop"


def done_reason(finish_reason: object) -> str:
    """OpenAI's `finish_reason` as Ollama's `done_reason`."""
    return "length" if finish_reason == "length" else "stop"


def ollama_format(response_format: object, given_format: object = None) -> Any:
    """OpenAI's `response_format` as Ollama's `format` (`given_format` when it says nothing).
    ValueError names what is wrong; the caller names the field."""
    if response_format is None:
        return given_format
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return given_format
    if kind == "json_object":
        return JSON_MODE
    if kind == "json_schema":
        assert isinstance(response_format, dict)
        schema = response_format.get("json_schema")
        if isinstance(schema, dict) and isinstance(schema.get("schema"), dict):
            return schema["schema"]
        raise ValueError("response_format.json_schema.schema must be an object")
    raise ValueError("response_format.type must be 'text', 'json_object' or 'json_schema'")


def response_format(ollama_format: object) -> dict[str, Any] | None:
    """Ollama's `format` as OpenAI's `response_format`: "json", a JSON schema, or "" / null for
    none. ValueError names what is wrong."""
    if ollama_format is None or ollama_format == "":
        return None
    if ollama_format == JSON_MODE:
        return {"type": "json_object"}
    if isinstance(ollama_format, dict):
        return {"type": "json_schema", "json_schema": {"name": "response", "schema": ollama_format}}
    raise ValueError("'format' must be \"json\" or a JSON schema object")
