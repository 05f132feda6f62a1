"""What a backend adapter is: pure translation between OpenAI's wire format and a backend's.

An adapter never does I/O. The worker asks it for the HTTP request to send, feeds it the
response bytes as they arrive, and asks it to turn a failed response into an OpenAI error.
One contract suite runs against every adapter.

Exceptions an adapter raises (services/workers/failures.py maps each to one class of the error
tree in shared/errors.py). A kind the backend has no endpoint for is not raised: the adapter
lists its `kinds`, and the worker answers `UnsupportedCapability` (400) before building anything.

    InvalidRequest    the body cannot be said in the backend's API → BadRequest (400), not retryable
    StreamBroken      the backend's reply is unreadable or cut off → UpstreamError (502 stream_truncated)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from shared.config import ProviderSpec
from shared.messages import RequestKind, WorkOrder


class InvalidRequest(Exception):
    """The request is valid OpenAI but has no translation for this backend (an image URL for
    Ollama, `n` > 1): a 400 naming the field, never a 500 or a silently different request."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


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


class StreamProgress:
    """What every stream translator keeps: the usage so far, how many content events it made,
    and whether the backend's end marker came (`_done`, set by the translator)."""

    def __init__(self) -> None:
        self.usage = Usage()
        self.content_events = 0
        self._done = False

    @property
    def finished(self) -> bool:
        return self._done


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

    def models_request(self, provider: ProviderSpec, api_key: str | None) -> BackendRequest | None:
        """The request that lists what the backend serves, or None if it cannot say."""

    def parse_models(self, body: bytes) -> list[str]:
        """Model names from the answer to `models_request`; StreamBroken if unreadable."""
