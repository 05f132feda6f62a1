"""What the gateway takes from a client's headers: its request id and its timeout.

A client's `x-request-id` is echoed and logged, never put in a subject; one that is too long
or not printable ASCII is replaced, so logs stay greppable and headers stay safe.
"""

from __future__ import annotations

import re

_SAFE_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def client_request_id(header: str | None) -> str | None:
    if header and _SAFE_ID.match(header):
        return header
    return None


def client_timeout(header: str | None) -> float | None:
    """The OpenAI SDK announces its timeout (`x-stainless-read-timeout`, older ones
    `x-stainless-timeout`) in seconds; a value that is not a positive number is ignored."""
    if not header:
        return None
    try:
        value = float(header)
    except ValueError:
        return None
    return value if value > 0 else None
