"""An OpenAI request said in Ollama's native API (`/api/chat`, `/api/generate`, `/api/embed`).

Mapping (Ollama's own /v1 layer does the same, see ollama/openai/openai.go):
- messages: `developer` becomes `system`; text parts join with newlines; `image_url` parts
  become the message's base64 `images` (Ollama cannot fetch an http URL: that is a 400);
  assistant `tool_calls` carry their arguments as objects, not JSON strings; a `tool` message
  names its tool (`tool_name`), found from `tool_call_id` when the client did not say.
- sampling: `temperature`, `top_p`, `seed`, `frequency_penalty`, `presence_penalty` (and the
  llama.cpp-style `top_k`, `min_p`, `repeat_penalty`, `typical_p`), `max_tokens` /
  `max_completion_tokens` → `num_predict`, `stop` → a list, all in `options`; a client's own
  `options` object is the base they override.
- `response_format`: `json_object` → `format: "json"`, `json_schema` → `format: <schema>`.
  These name tables are shared with the gateway's Ollama front door: shared/ollama_names.py.
- `tools` pass as they are (same shape); `tool_choice: "none"` drops them (Ollama has no
  tool_choice). `keep_alive`, `think` and a native `format` pass through.
- Every other top-level field passes through untouched (docs/api.md promises it, and the
  simulator's `simulator` knob rides on it); only OpenAI's own fields (`OPENAI_ONLY`: translated
  above, or meaningless to Ollama) stay behind. What the translation wrote is never overwritten.
- `stream` is always sent: Ollama streams unless told not to.
"""

from __future__ import annotations

from typing import Any

from services.workers.adapters.base import InvalidRequest
from services.workers.adapters.openai_request import (
    ImagePart,
    content_parts,
    max_tokens,
    require_single_choice,
    stop_list,
    text_of,
    tool_arguments,
    tool_names_by_call_id,
)
from shared.ollama_names import NUM_PREDICT, PASSTHROUGH, SAMPLING, ollama_format

# OpenAI's request fields: translated into Ollama's (the SAMPLING names too), or with no meaning to
# Ollama. Any other top-level field is the client's word to the backend and goes as it came.
OPENAI_ONLY = frozenset({
    "model", "messages", "prompt", "input", "stream", "stream_options", "max_tokens", "max_completion_tokens",
    "stop", "response_format", "tools", "tool_choice", "parallel_tool_calls", "functions", "function_call", "n",
    "user", "logprobs", "top_logprobs", "logit_bias", "echo", "best_of", "metadata", "store", "service_tier",
    "modalities", "audio", "prediction", "reasoning_effort", "web_search_options", "encoding_format",
    "dimensions", *SAMPLING,
})


def _pass_the_rest(body: dict[str, Any], out: dict[str, Any], translated: tuple[str, ...] = ()) -> dict[str, Any]:
    """`translated`: Ollama's own fields `_common` already read (an empty `options`, a null `format`)."""
    for name, value in body.items():
        if name not in OPENAI_ONLY and name not in translated and name not in out:
            out[name] = value
    return out


def _options(body: dict[str, Any]) -> dict[str, Any]:
    given = body.get("options")
    if given is not None and not isinstance(given, dict):
        raise InvalidRequest("'options' must be an object", "options")
    options = dict(given or {})
    for name in SAMPLING:
        if body.get(name) is not None:
            options[name] = body[name]
    cap = max_tokens(body)
    if cap is not None:
        options[NUM_PREDICT] = cap
    stop = stop_list(body)
    if stop is not None:
        options["stop"] = stop
    return options


def _format(body: dict[str, Any]) -> Any:
    try:
        return ollama_format(body.get("response_format"), body.get("format"))
    except ValueError as e:
        raise InvalidRequest(str(e), "response_format") from None


_COMMON = ("options", "format")


def _common(body: dict[str, Any], backend_model: str, stream: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"model": backend_model, "stream": stream}
    options = _options(body)
    if options:
        out["options"] = options
    fmt = _format(body)
    if fmt is not None:
        out["format"] = fmt
    for name in PASSTHROUGH:
        if name in body:
            out[name] = body[name]
    return out


def _message(message: dict[str, Any], i: int, tool_names: dict[str, str]) -> dict[str, Any]:
    role = message.get("role")
    out: dict[str, Any] = {"role": "system" if role == "developer" else role}
    parts = content_parts(message.get("content"), f"messages[{i}].content")
    out["content"] = text_of(parts)
    images = []
    for part in parts:
        if isinstance(part, ImagePart):
            if part.data is None:
                raise InvalidRequest(f"messages[{i}].content: Ollama cannot fetch image URLs; send the image as a "
                                     "base64 data URL", f"messages[{i}].content")
            images.append(part.data)
    if images:
        out["images"] = images
    calls = message.get("tool_calls")
    if calls:
        if not isinstance(calls, list):
            raise InvalidRequest(f"messages[{i}].tool_calls must be an array", f"messages[{i}].tool_calls")
        out["tool_calls"] = []
        for j, call in enumerate(calls):
            call_id, name, arguments = tool_arguments(call, f"messages[{i}].tool_calls[{j}]")
            converted: dict[str, Any] = {"function": {"name": name, "arguments": arguments}}
            if call_id is not None:
                converted["id"] = call_id
            out["tool_calls"].append(converted)
    if role == "tool":
        answers = message.get("tool_call_id")
        tool_name = message.get("name") or (tool_names.get(answers) if isinstance(answers, str) else None)
        if tool_name:
            out["tool_name"] = tool_name
        if isinstance(answers, str):
            out["tool_call_id"] = answers
    return out


def chat_body(body: dict[str, Any], backend_model: str, stream: bool) -> dict[str, Any]:
    require_single_choice(body)
    messages = body.get("messages")
    if not isinstance(messages, list):
        raise InvalidRequest("'messages' must be an array", "messages")
    tool_names = tool_names_by_call_id(messages)
    out = _common(body, backend_model, stream)
    out["messages"] = [_message(m, i, tool_names) for i, m in enumerate(messages)]
    tools = body.get("tools")
    if tools and body.get("tool_choice") != "none":
        out["tools"] = tools
    return _pass_the_rest(body, out, _COMMON)


def generate_body(body: dict[str, Any], backend_model: str, stream: bool) -> dict[str, Any]:
    require_single_choice(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise InvalidRequest("this provider completes one text prompt per request: 'prompt' must be a string",
                             "prompt")
    out = _common(body, backend_model, stream)
    out["prompt"] = prompt
    return _pass_the_rest(body, out, _COMMON)  # Ollama's own `suffix`, `system`, `raw`, `images` among them


def embed_body(body: dict[str, Any], backend_model: str) -> dict[str, Any]:
    given = body.get("input")
    if isinstance(given, str):
        inputs: list[str] = [given]
    elif isinstance(given, list) and given and all(isinstance(x, str) for x in given):
        inputs = given
    else:
        raise InvalidRequest("this provider embeds text: 'input' must be a string or an array of strings "
                             "(not token arrays)", "input")
    out: dict[str, Any] = {"model": backend_model, "input": inputs}
    if body.get("dimensions") is not None:
        out["dimensions"] = body["dimensions"]
    return _pass_the_rest(body, out)  # Ollama's own `truncate`, `keep_alive`, `options` among them
