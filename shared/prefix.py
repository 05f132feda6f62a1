"""A request's affinity key: what makes two requests likely to share an engine's prefix cache.
Pure; computed where the body is (the client library, so the gateway and any NATS caller) and
carried to the routers in `InferenceRequest.prefix_hash`.

Rules, first that applies:
1. an explicit session (`x-session-id` header, or the client library's `session_id`): that
   session's conversation stays together;
2. the body's `user` field (OpenAI's end-user id): that user's requests stay together;
3. chat: the leading system messages and the first other message. A multi-turn conversation
   resends them unchanged each turn, so every turn maps to the same key; conversations that
   share only a system prompt spread over the pool (each engine caches the system prompt once);
4. a completion's `prompt`: its first `PROMPT_PREFIX_CHARS` characters;
5. otherwise (embeddings, empty bodies): None, no affinity.
Keys are 128-bit blake2b hex digests, prefixed by their kind: never the text itself.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

PROMPT_PREFIX_CHARS = 1024


def _digest(kind: str, value: object) -> str:
    raw = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str).encode()
    return kind + ":" + hashlib.blake2b(raw, digest_size=16).hexdigest()


def prefix_key(body: Mapping[str, Any], session: str | None = None) -> str | None:
    if session:
        return _digest("session", session)
    user = body.get("user")
    if isinstance(user, str) and user:
        return _digest("user", user)
    messages = body.get("messages")
    if isinstance(messages, list) and messages:
        leading: list[Any] = []
        for message in messages:
            leading.append(message)
            if not (isinstance(message, Mapping) and message.get("role") in ("system", "developer")):
                break
        system = body.get("system")  # Anthropic's top-level system prompt, when a body carries one
        return _digest("prefix", [system, leading] if system else leading)
    prompt = body.get("prompt")
    if isinstance(prompt, str) and prompt:
        return _digest("prompt", prompt[:PROMPT_PREFIX_CHARS])
    return None
