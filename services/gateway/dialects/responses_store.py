"""Stored responses, the logic: what an entry holds, who may see it, what a next turn reads. Pure.

An entry is kept under its response id (`resp_<32 hex>`) while `store` is true (the default, as
OpenAI's) and the response finished (`completed` or `incomplete`; a failed stream is not kept).
It holds the Response object and every input item it answered: the earlier turns' items
(`previous_response_id`'s input and output, resolved when the request came) and then its own
input. So a next turn reads one entry, never a chain, and an entry outlives its ancestors'
expiry. Instructions are not part of it: OpenAI does not carry them to the next turn either.

An entry belongs to the tenant (the API key) that made it: another tenant is told "not found",
as is anyone asking for a malformed id (which never reaches the store: ids become KV keys).
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from typing import Any

import msgspec

from shared.errors import ClientError

_ID = re.compile(r"resp_[0-9a-f]{32}")
STORED_STATUSES = ("completed", "incomplete")


class StoredResponse(msgspec.Struct, frozen=True, kw_only=True):
    tenant: str
    input: list[dict[str, Any]]  # every item this response answered, earlier turns' included
    response: dict[str, Any]  # the Response object, as the client got it


_encode = msgspec.json.encode
_decode = msgspec.json.Decoder(StoredResponse).decode


def new_id(token_hex: str | None = None) -> str:
    return "resp_" + (token_hex if token_hex is not None else secrets.token_hex(16))


def not_found(response_id: str, param: str | None = None) -> ClientError:
    return ClientError(404, f"Response with id '{response_id}' not found.", param=param, code="not_found")


def key(response_id: str, param: str | None = None) -> str:
    """The store key of `response_id`: a 404 for anything that is not one of our ids."""
    if not _ID.fullmatch(response_id):
        raise not_found(response_id[:80], param)
    return response_id


def entry(tenant: str, notes: Mapping[str, Any], final: Mapping[str, Any] | None) -> bytes | None:
    """What to keep for an answered request (None: nothing, `store: false` or not finished)."""
    if final is None or not notes.get("store") or final.get("status") not in STORED_STATUSES:
        return None
    return _encode(StoredResponse(tenant=tenant, input=list(notes["input"]), response=dict(final)))


def visible(data: bytes | None, tenant: str, response_id: str, param: str | None = None) -> StoredResponse:
    """The entry, when it exists and `tenant` made it; else the same 404 either way."""
    if data is None:
        raise not_found(response_id, param)
    try:
        stored = _decode(data)
    except msgspec.DecodeError:  # written by a newer or broken writer: not ours to read
        raise not_found(response_id, param) from None
    if stored.tenant != tenant:
        raise not_found(response_id, param)
    return stored


def earlier_items(stored: StoredResponse) -> list[dict[str, Any]]:
    """The items a next turn starts from: this response's input, then its output."""
    output = stored.response.get("output")
    return [*stored.input, *(output if isinstance(output, list) else [])]


def body(stored: StoredResponse) -> bytes:
    return _encode(stored.response)


def deleted(response_id: str) -> bytes:
    return _encode({"id": response_id, "object": "response", "deleted": True})
