"""What a backend adapter is: pure translation between OpenAI's wire format and a backend's.

An adapter never does I/O. The worker asks it for the HTTP request to send, feeds it the
response bytes as they arrive, and asks it to turn a failed response into an OpenAI error.
One contract suite runs against every adapter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.config import ProviderSpec
from shared.messages import RequestKind, WorkOrder


class UnsupportedKind(Exception):
    """The backend has no such endpoint (embeddings on Anthropic): a 400, not a 500."""


class StreamBroken(Exception):
    """The backend's stream ended without its end marker, or sent something unreadable."""


@dataclass(frozen=True)
class BackendRequest:
    method: str
    url: str
    json: dict[str, Any] | None
    stream: bool
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


class StreamTranslator(Protocol):
    usage: Usage
    content_events: int

    def feed(self, raw: bytes) -> list[bytes]:
        """OpenAI chunk objects (JSON bytes) completed by `raw`."""

    @property
    def finished(self) -> bool:
        """True once the backend's end marker has been seen."""


class Adapter(Protocol):
    kinds: frozenset[RequestKind]

    def build(self, order: WorkOrder, provider: ProviderSpec, api_key: str | None) -> BackendRequest: ...

    def stream(self, order: WorkOrder) -> StreamTranslator: ...

    def result(self, order: WorkOrder, body: bytes) -> tuple[bytes, Usage]: ...

    def error_message(self, body: bytes) -> str | None:
        """The backend's own error text, if its body has one."""
