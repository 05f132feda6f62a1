"""Per-request limits, pure: the `max_tokens` cap per model, the prompt-token estimate, and which
rate limits a request is counted against.

Rate limits come from two places: the virtual key's own `rpm`/`tpm` (all its traffic) and
`limits.models.<model>` in the config (per key and model; without auth, per model). The prompt
is estimated from the body's size (about four bytes a token) before the request runs; the real
usage the backend reports replaces the estimate afterwards, and completion tokens are charged
then.
"""

from __future__ import annotations

from typing import Any

from services.gateway.auth import Principal
from services.gateway.gcra import Limit
from shared.config import LimitSettings
from shared.errors import BadRequest

BYTES_PER_TOKEN = 4
_MAX_TOKEN_FIELDS = ("max_tokens", "max_completion_tokens")


def apply_max_tokens(kind: str, model: str, body: dict[str, Any], settings: LimitSettings) -> None:
    """Refuse a request above the model's cap; give one that names no limit the cap. Edits `body`."""
    cap = settings.models[model].max_tokens if model in settings.models else None
    if cap is None or kind == "embedding":
        return
    named = False
    for field in _MAX_TOKEN_FIELDS:
        value = body.get(field)
        if value is None:
            continue
        named = True
        if value > cap:
            raise BadRequest(f"'{field}' is {value}; the limit for model {model!r} is {cap}", param=field,
                             code="max_tokens_exceeded")
    if not named:
        body["max_tokens"] = cap


def estimate_prompt_tokens(raw_body: bytes) -> int:
    return max(1, len(raw_body) // BYTES_PER_TOKEN)


def rate_limits(principal: Principal, model: str, settings: LimitSettings, prompt_tokens: int) -> list[Limit]:
    """The limits this request is checked against, with the cost it spends on each (may be empty)."""
    found: list[Limit] = []
    scope = principal.tenant
    if principal.rpm:
        found.append(Limit(f"rl:{scope}:requests", "requests", principal.rpm, 1))
    if principal.tpm:
        found.append(Limit(f"rl:{scope}:tokens", "tokens", principal.tpm, prompt_tokens))
    per_model = settings.models.get(model)
    if per_model is not None:
        # The model name goes into a Redis key: hex-escaped so no name can collide with another scope.
        token = model.encode().hex()
        if per_model.rpm:
            found.append(Limit(f"rl:{scope}:m:{token}:requests", "requests", per_model.rpm, 1))
        if per_model.tpm:
            found.append(Limit(f"rl:{scope}:m:{token}:tokens", "tokens", per_model.tpm, prompt_tokens))
    return found


def completion_charges(limits: list[Limit], estimated_prompt: int, prompt_tokens: int,
                       completion_tokens: int) -> list[Limit]:
    """What to charge after the answer: its completion, plus any prompt the estimate missed."""
    extra = completion_tokens + max(0, prompt_tokens - estimated_prompt)
    if extra <= 0:
        return []
    return [Limit(lim.key, lim.unit, lim.per_minute, extra) for lim in limits if lim.unit == "tokens"]
