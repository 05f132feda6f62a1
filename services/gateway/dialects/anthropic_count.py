"""`POST /v1/messages/count_tokens`, estimated. Pure.

The gateway cannot see a backend's tokenizer from here, so this is an estimate, documented as
one (docs/front-doors.md): the characters of every text the model would read (system prompt,
messages, tool calls and results, tool definitions as JSON) over 4, plus 4 tokens per message
for the chat template's markers, plus 1,600 per image (Anthropic's own figure for a
~1.15-megapixel image). Within ~20% of a Llama-3 or Qwen tokenizer on English prose and code;
worse on languages without spaces. Claude Code uses the count to decide when to compact, so
an estimate that errs a little high is the safer side: the factor below leans that way.
"""

from __future__ import annotations

from typing import Any

import msgspec

from services.gateway.dialects.anthropic_request import conversation
from services.gateway.validation import decode_object
from shared.errors import BadRequest

_encode = msgspec.json.encode
CHARS_PER_TOKEN = 3.6  # a little under 4: better to say too many than too few
PER_MESSAGE = 4
PER_IMAGE = 1600


def _chars(content: object) -> tuple[int, int]:
    """(characters, images) in an OpenAI message's content."""
    if isinstance(content, str):
        return len(content), 0
    chars = images = 0
    for part in content if isinstance(content, list) else ():
        if isinstance(part, dict) and part.get("type") == "text":
            chars += len(str(part.get("text", "")))
        elif isinstance(part, dict):
            images += 1
    return chars, images


def estimate(messages: list[dict[str, Any]], tools: object) -> int:
    chars = len(_encode(tools)) if tools else 0
    images = 0
    for message in messages:
        c, i = _chars(message.get("content"))
        chars += c
        images += i
        for call in message.get("tool_calls") or ():
            chars += len(call["function"]["name"]) + len(call["function"]["arguments"])
    return max(1, round(chars / CHARS_PER_TOKEN) + PER_MESSAGE * len(messages) + PER_IMAGE * images)


def count_tokens(raw: bytes) -> bytes:
    """The answer's body: `{"input_tokens": N}`; BadRequest naming the field for a malformed request."""
    request = decode_object(raw)
    if not isinstance(request.get("model"), str) or not request["model"]:
        raise BadRequest("model: Field required: a non-empty string", param="model")
    return _encode({"input_tokens": estimate(conversation(request), request.get("tools"))})
