"""Anthropic's Messages API words for what OpenAI calls otherwise, both directions, in one place.

Used by the worker's Anthropic adapter (OpenAI → a backend's Messages API), the gateway's
Anthropic front door (a client's Messages API → OpenAI) and the simulator's Anthropic flavour.
"""

from __future__ import annotations

# Anthropic's stop_reason → OpenAI's finish_reason (a backend's answer, read by the worker).
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
                  "tool_use": "tool_calls", "refusal": "content_filter"}

# OpenAI's finish_reason → Anthropic's stop_reason (an answer, said to an Anthropic client).
# `stop` is `end_turn`, or `stop_sequence` when the backend says which of the stops matched.
STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}

# HTTP status → the `error.type` of Anthropic's `{"type": "error", "error": {...}}`. A 4xx not
# listed is `invalid_request_error` (Anthropic's own rule), a 5xx not listed `api_error`.
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
               403: "permission_error", 404: "not_found_error", 413: "request_too_large",
               429: "rate_limit_error", 500: "api_error", 503: "overloaded_error", 504: "timeout_error",
               529: "overloaded_error"}


def error_type(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status]
    return "invalid_request_error" if 400 <= status < 500 else "api_error"
