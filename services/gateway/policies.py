"""The gateway's policies, built once from config: auth, rate limits and the response cache, on
Redis when `REDIS_URL` (or the variable `redis.url_env` names) is set, else in this process.

Everything here runs before a request touches NATS, in this order: authenticate (headers only),
read and validate the body, model permission, `max_tokens` cap, rate limits, cache lookup.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from services.gateway import gcra, usage_limits
from services.gateway.auth import Authenticator, Principal, auth_mode
from services.gateway.cache import CachedAnswer, CacheMode, cache_key, cache_mode, ttl_for
from services.gateway.cache_store import Lookup, MemoryStore, RedisStore, ResponseCache
from services.gateway.gcra import Limit
from services.gateway.key_store import FileKeyStore, KeyStore, RedisKeyStore
from services.gateway.rate_limit_store import Limiter, LocalLimiter, RedisLimiter
from services.gateway.redis_link import RedisLink, connect
from services.gateway.validation import ParsedRequest
from shared.config import Config, RuntimeFile
from shared.errors import RateLimited
from shared.metrics import GatewayMetrics


class OverLimit(RateLimited):
    def __init__(self, message: str, headers: dict[str, str], retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)
        self.headers = headers


def key_store(runtime: RuntimeFile, link: RedisLink | None, state_dir: Path) -> KeyStore:
    if link is not None:
        return RedisKeyStore(link)
    return FileKeyStore(Path(runtime.auth.keys_file) if runtime.auth.keys_file else state_dir / "keys.json")


@dataclass
class Admission:
    """What the policies decided for one request, and what to settle when its answer is complete."""

    principal: Principal
    limits: list[Limit] = field(default_factory=list)
    estimated_prompt: int = 0
    headers: dict[str, str] = field(default_factory=dict)  # x-ratelimit-*, x-aiub-cache
    mode: CacheMode | None = None
    key: str | None = None
    ttl_s: float = 0.0


@dataclass
class Policies:
    runtime: RuntimeFile
    auth: Authenticator
    limiter: Limiter
    cache: ResponseCache | None
    metrics: GatewayMetrics
    registry: CollectorRegistry
    link: RedisLink | None = None

    @classmethod
    def build(cls, config: Config, *, host: str, insecure_no_auth: bool, state_dir: Path) -> Policies:
        runtime = config.runtime
        master_key = runtime.auth.master_key()
        mode = auth_mode(host, master_key, insecure_no_auth, runtime.auth.min_master_key_chars,
                         runtime.auth.master_key_env)
        link = connect(runtime.redis.url(), runtime.redis)
        registry = CollectorRegistry()
        metrics = GatewayMetrics(registry)
        store = RedisStore(link) if link else MemoryStore(runtime.cache.max_entries)
        cache = ResponseCache(store, metrics, runtime.cache.max_entry_bytes) if runtime.cache.enabled else None
        return cls(runtime=runtime, auth=Authenticator(mode, master_key, key_store(runtime, link, state_dir)),
                   limiter=RedisLimiter(link) if link else LocalLimiter(), cache=cache, metrics=metrics,
                   registry=registry, link=link)

    def describe(self) -> dict[str, Any]:
        backend = "redis" if self.link else "memory"
        return {"auth": self.auth.mode, "cache": backend if self.cache else "off", "limits": backend}

    async def close(self) -> None:
        if self.link is not None:
            await self.link.close()

    async def admit(self, principal: Principal, parsed: ParsedRequest, raw: bytes,
                    cache_control: str | None) -> tuple[Admission, CachedAnswer | None]:
        """Apply limits and look the request up; raises on a refusal. A hit comes back as the answer."""
        principal.check_model(parsed.model)
        usage_limits.apply_max_tokens(parsed.kind, parsed.model, parsed.body, self.runtime.limits)
        admission = Admission(principal, estimated_prompt=usage_limits.estimate_prompt_tokens(raw))
        admission.limits = usage_limits.rate_limits(principal, parsed.model, self.runtime.limits,
                                                    admission.estimated_prompt)
        if admission.limits:
            allowed, decisions = await self.limiter.check(admission.limits)
            admission.headers.update(gcra.headers(admission.limits, decisions))
            if not allowed:
                raise OverLimit("rate limit exceeded for this API key; see the x-ratelimit-* headers",
                                admission.headers, gcra.retry_after_s(decisions))
        if self.cache is None:
            return admission, None
        admission.mode = cache_mode(self.runtime.cache, parsed.model, cache_control, parsed.cache)
        if not admission.mode.used:
            admission.headers["x-aiub-cache"] = "bypass"
            return admission, None
        key_body = parsed.body if parsed.native is None else {**parsed.body, "native": parsed.native}
        admission.key = cache_key(parsed.kind, key_body, principal.tenant)
        admission.ttl_s = ttl_for(self.runtime.cache, parsed.model)
        answer: CachedAnswer | None = None
        lookup: Lookup = "miss"
        if admission.mode.read:
            answer, lookup = await self.cache.get(admission.key)
        admission.headers["x-aiub-cache"] = lookup if admission.mode.read else "bypass"
        return admission, answer

    async def settle(self, admission: Admission, answer: CachedAnswer | None, prompt_tokens: int,
                     completion_tokens: int) -> None:
        """A complete, successful answer: store it and charge the tokens the estimate did not cover."""
        charges = usage_limits.completion_charges(admission.limits, admission.estimated_prompt, prompt_tokens,
                                                  completion_tokens)
        if charges:
            await self.limiter.charge(charges)
        if (answer is not None and self.cache is not None and admission.key is not None
                and admission.mode is not None and admission.mode.write):
            await self.cache.put(admission.key, answer, admission.ttl_s)
