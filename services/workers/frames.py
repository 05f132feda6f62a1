"""What a backend call needs of the channel its frames go out on: the attempt they belong to, the
next sequence number, the bus's payload limit, and the send itself.

A protocol below both its user (backend.py) and its implementation (service.FrameSender), so the
call does not import the layer that runs it.
"""

from __future__ import annotations

from typing import Protocol

import msgspec


class FrameSender(Protocol):
    @property
    def attempt(self) -> str: ...

    @property
    def max_payload(self) -> int: ...

    def next_seq(self) -> int: ...

    async def send(self, frame: msgspec.Struct) -> None: ...
