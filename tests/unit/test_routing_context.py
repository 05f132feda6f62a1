"""Context-length errors: how a backend's refusal is recognised, so the caller can move models."""

from __future__ import annotations

import pytest

from services.workers.failures import from_status
from shared.messages import CONTEXT_LENGTH_EXCEEDED


@pytest.mark.parametrize("message", [
    "This model's maximum context length is 8192 tokens. However, you requested 9000 tokens.",  # OpenAI, vLLM
    "The decoder prompt (length 9000) is longer than the maximum model length of 8192.",  # newer vLLM
    "the request exceeds the available context size, try increasing it",  # llama.cpp server
    "input length exceeds the context length",  # Ollama
    "prompt is too long: 210000 tokens > 200000 maximum",  # Anthropic
])
def test_context_length_errors_are_marked(message: str) -> None:
    failure = from_status("vllm", 400, message)
    assert failure.error.code == CONTEXT_LENGTH_EXCEEDED
    assert failure.status == 400 and not failure.retryable and failure.outcome == "client_error"


@pytest.mark.parametrize(("status", "message"), [
    (400, "temperature must be between 0 and 2"),
    (500, "maximum context length exceeded while allocating"),  # a server fault stays a server fault
    (400, None),
])
def test_other_errors_are_not(status: int, message: str | None) -> None:
    assert from_status("vllm", status, message).error.code != CONTEXT_LENGTH_EXCEEDED
