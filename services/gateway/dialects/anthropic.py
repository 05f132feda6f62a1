"""The Anthropic Messages front door: `POST /v1/messages` as a Dialect (dialects/__init__.py). Pure.

Credentials: `x-api-key: <key>` (the SDK's `api_key`, Claude Code's ANTHROPIC_API_KEY) or
`Authorization: Bearer <key>` (`auth_token`, ANTHROPIC_AUTH_TOKEN); the bearer header wins when
both are sent. `anthropic-version` and `anthropic-beta` are accepted and not required.
Errors are `{"type": "error", "error": {"type", "message"}}` with the tree's HTTP status and
Anthropic's type for it (shared/anthropic_terms.py); a field's error message starts with its
dotted path, as Anthropic's do (`max_tokens: Field required`).
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from services.gateway.dialects import Translated
from services.gateway.dialects.anthropic_answer import MessageStream, error_body, message
from services.gateway.dialects.anthropic_request import translate
from shared.messages import ErrorBody

_encode = msgspec.json.encode


class AnthropicMessages:
    name = "anthropic"
    stream_media_type = "text/event-stream; charset=utf-8"

    def authorization(self, headers: Mapping[str, str]) -> str | None:
        bearer = headers.get("authorization")
        if bearer:
            return bearer
        key = headers.get("x-api-key")
        return f"Bearer {key}" if key else None

    def parse(self, raw: bytes) -> Translated:
        return translate(raw)

    def result(self, translated: Translated, data: bytes) -> bytes:
        return message(translated, data)

    def stream(self, translated: Translated) -> MessageStream:
        return MessageStream(translated)

    def error(self, status: int, error: ErrorBody) -> bytes:
        return _encode(error_body(status, error))


MESSAGES = AnthropicMessages()
