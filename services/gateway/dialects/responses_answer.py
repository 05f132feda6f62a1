"""OpenAI chat answers said as Responses API objects: the Response and its output items. Pure.

A Response lists its output items in reading order: a `reasoning` item (the backend's reasoning
text: vLLM's `reasoning_content`, as one `reasoning_text` content part), a `message` with one
`output_text` part, then one `function_call` item per tool call (`call_id` the backend's call id,
`arguments` its JSON text). Item ids derive from the response id and the item's index
(`msg_<response>_1`), so one answer always says the same ids.

Status: `completed`; `incomplete` when the backend stopped at the token cap (`length` →
`incomplete_details.reason: "max_output_tokens"`) or a content filter; `failed` (with `error`)
only for a stream that broke. Usage: input/output/total tokens, cached and reasoning tokens
when the backend reported them.

Errors are OpenAI's own `{"error": {...}}` (shared/errors.py): the Responses API shares them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from services.gateway.dialects.openai_objects import read
from shared.messages import ErrorBody

_decode = msgspec.json.decode
_INCOMPLETE = {"length": "max_output_tokens", "content_filter": "content_filter"}


def item_id(notes: Mapping[str, Any], prefix: str, index: int) -> str:
    return f"{prefix}_{str(notes['response_id']).removeprefix('resp_')}_{index}"


def status_of(finish_reason: str | None) -> tuple[str, dict[str, str] | None]:
    """(status, incomplete_details) for the backend's finish reason."""
    reason = _INCOMPLETE.get(finish_reason or "")
    return ("incomplete", {"reason": reason}) if reason else ("completed", None)


def usage(prompt: int, completion: int, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    return {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": cached, "cache_write_tokens": 0},
            "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + completion}


def failure(status: int, error: ErrorBody) -> dict[str, str]:
    """A Response's `error`: its code is one of OpenAI's few for a failed response."""
    return {"code": "rate_limit_exceeded" if status == 429 else "server_error", "message": error.message}


def response(notes: Mapping[str, Any], *, status: str, output: list[dict[str, Any]],
             usage: dict[str, Any] | None = None, error: dict[str, str] | None = None,
             incomplete: dict[str, str] | None = None) -> dict[str, Any]:
    """The Response object, with the request's settings echoed."""
    return {"id": notes["response_id"], "object": "response", "created_at": notes["created_at"], "status": status,
            "background": False, "error": error, "incomplete_details": incomplete, **notes["echo"],
            "model": notes["model"], "output": output, "usage": usage}


def reasoning_item(notes: Mapping[str, Any], index: int, text: str, status: str) -> dict[str, Any]:
    content = [{"type": "reasoning_text", "text": text}] if text or status != "in_progress" else []
    return {"id": item_id(notes, "rs", index), "type": "reasoning", "summary": [], "content": content,
            "status": status}


def message_item(notes: Mapping[str, Any], index: int, text: str | None, status: str) -> dict[str, Any]:
    """`text` None: the message's content part is not open yet (a stream's first event)."""
    content = [] if text is None else [output_text(text)]
    return {"id": item_id(notes, "msg", index), "type": "message", "status": status, "role": "assistant",
            "content": content}


def output_text(text: str) -> dict[str, Any]:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def call_item(notes: Mapping[str, Any], index: int, call_id: str | None, name: str, arguments: str,
              status: str) -> dict[str, Any]:
    return {"id": item_id(notes, "fc", index), "type": "function_call", "status": status,
            "call_id": call_id or item_id(notes, "call", index), "name": name, "arguments": arguments}


def _details(data: bytes) -> tuple[int, int]:
    """(cached prompt tokens, reasoning tokens) from a chat.completion's usage details, when given."""
    obj = _decode(data)
    found = obj.get("usage") if isinstance(obj, dict) else None
    if not isinstance(found, dict):
        return 0, 0
    cached = (found.get("prompt_tokens_details") or {}).get("cached_tokens")
    reasoning = (found.get("completion_tokens_details") or {}).get("reasoning_tokens")
    return (cached if isinstance(cached, int) else 0), (reasoning if isinstance(reasoning, int) else 0)


def result(notes: Mapping[str, Any], data: bytes) -> dict[str, Any]:
    """A whole chat.completion → the Response object."""
    piece = read(data)
    status, incomplete = status_of(piece.finish_reason)
    item_status = "incomplete" if status == "incomplete" else "completed"
    output: list[dict[str, Any]] = []
    if piece.reasoning:
        output.append(reasoning_item(notes, len(output), piece.reasoning, item_status))
    if piece.text or not piece.tool_calls:
        output.append(message_item(notes, len(output), piece.text, item_status))
    for call in piece.tool_calls:
        output.append(call_item(notes, len(output), call.id, call.name or "", call.arguments, item_status))
    cached, reasoning = _details(data)
    spent = usage(piece.prompt_tokens or 0, piece.completion_tokens or 0, cached, reasoning)
    return response(notes, status=status, output=output, usage=spent, incomplete=incomplete)
