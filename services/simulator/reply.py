"""The reply objects' contract: what every route's builder in openai_wire, ollama_wire and
anthropic_wire returns, and what the server writes out, whole or paced as a stream."""

from __future__ import annotations

from typing import Protocol


class Reply(Protocol):
    """What openai_wire / ollama_wire / anthropic_wire reply objects offer; see openai_wire."""

    stream: bool
    content_type: bytes
    n: int

    def full(self, elapsed_ns: int) -> bytes: ...


class StreamReply(Reply, Protocol):
    def prelude(self) -> bytes: ...
    def event(self, i: int) -> bytes: ...
    def tail(self, elapsed_ns: int) -> bytes: ...
