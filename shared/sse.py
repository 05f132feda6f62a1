"""Server-sent events, both directions, with no I/O.

`SSEParser` is fed raw bytes as they arrive from a backend and returns complete `data:`
payloads; it copes with events split across reads, CRLF line ends, comments and multi-line
data. `event()` frames one payload for a client.
"""

from __future__ import annotations

DONE = b"[DONE]"


def event(payload: bytes) -> bytes:
    return b"data: " + payload + b"\n\n"


DONE_EVENT = event(DONE)


class SSEParser:
    def __init__(self, max_buffer: int = 16 * 1024 * 1024) -> None:
        self._buffer = b""
        self._data: list[bytes] = []
        self._max_buffer = max_buffer

    def feed(self, raw: bytes) -> list[bytes]:
        """Return the data payloads of every event completed by `raw`."""
        buffer = self._buffer + raw if self._buffer else raw
        if len(buffer) > self._max_buffer:
            raise ValueError("server-sent event exceeds the buffer limit")
        out: list[bytes] = []
        start = 0  # lines are cut by index and the rest kept once: a large read stays linear
        while (newline := buffer.find(b"\n", start)) >= 0:
            line = buffer[start:newline].rstrip(b"\r")
            start = newline + 1
            if not line:
                if self._data:
                    out.append(b"\n".join(self._data))
                    self._data = []
            elif line.startswith(b"data:"):
                value = line[5:]
                self._data.append(value[1:] if value.startswith(b" ") else value)
            # `event:`, `id:`, `retry:` and `:comment` lines carry nothing we forward.
        self._buffer = buffer[start:]
        return out

    @property
    def pending(self) -> bool:
        """True when bytes of an unfinished event remain: the stream was cut mid-event."""
        return bool(self._data or self._buffer.strip())
