"""The gateway's policies, built once from config: auth, rate limits and the response cache, on
Redis when `REDIS_URL` (or the variable `redis.url_env` names) is set, else in this process.

Everything here runs before a request touches NATS, in this order: authenticate (headers only),
read and validate the body, model permission, `max_tokens` cap, rate limits, cache lookup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from services.gateway import budgets, gcra, usage_limits
from services.gateway.auth import Authenticator, Principal, auth_mode
from services.gateway.budget_store import BudgetStore, LocalBudgets, RedisBudgets
from services.gateway.cache import CachedAnswer, CacheMode, cache_key, cache_mode, ttl_for
from services.gateway.cache_store import Lookup, MemoryStore, RedisStore, ResponseCache
from services.gateway.gcra import Limit
from services.gateway.key_store import FileKeyStore, KeyStore, RedisKeyStore
from services.gateway.prices import Prices
from services.gateway.rate_limit_store import Limiter, LocalLimiter, RedisLimiter
from services.gateway.redis_link import RedisLink, connect
from services.gateway.usage import tenant_name
from services.gateway.usage_store import UsageRecorder
from services.gateway.validation import ParsedRequest
from shared.config import Config, RuntimeFile
from shared.errors import RateLimited
from shared.metrics import GatewayMetrics


class OverLimit(RateLimited):
    def __init__(self, message: str, headers: dict[str, str], retry_after: float) -> None:
        super().__init__(message, retry_after=retry_after)
        self.headers = headers


class OverBudget(RateLimited):
    code = "budget_exceeded"


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
    model: str = ""
    # Budgets (budgets.py): what the admission charged, to settle or release once.
    budget_charges: list[budgets.Charge] = field(default_factory=list)
    estimated_cost: float = 0.0
    settled: bool = False


@dataclass
class Policies:
    runtime: RuntimeFile
    auth: Authenticator
    limiter: Limiter
    cache: ResponseCache | None
    metrics: GatewayMetrics
    registry: CollectorRegistry
    link: RedisLink | None = None
    budgets: BudgetStore = field(default_factory=LocalBudgets)
    usage: UsageRecorder = field(default_factory=UsageRecorder)
    prices: Prices = field(default_factory=Prices)
    clock: Callable[[], float] = time.time

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
                   registry=registry, link=link, budgets=RedisBudgets(link) if link else LocalBudgets(),
                   prices=Prices.of(config))

    def describe(self) -> dict[str, Any]:
        backend = "redis" if self.link else "memory"
        return {"auth": self.auth.mode, "cache": backend if self.cache else "off", "limits": backend,
                "budgets": backend}

    async def close(self) -> None:
        await self.usage.close()
        if self.link is not None:
            await self.link.close()

    async def admit(self, principal: Principal, parsed: ParsedRequest, raw: bytes,
                    cache_control: str | None) -> tuple[Admission, CachedAnswer | None]:
        """Apply limits and look the request up; raises on a refusal. A hit comes back as the answer."""
        principal.check_model(parsed.model)
        usage_limits.apply_max_tokens(parsed.kind, parsed.model, parsed.body, self.runtime.limits)
        admission = Admission(principal, estimated_prompt=usage_limits.estimate_prompt_tokens(raw),
                              model=parsed.model)
        admission.limits = usage_limits.rate_limits(principal, parsed.model, self.runtime.limits,
                                                    admission.estimated_prompt)
        if admission.limits:
            allowed, decisions = await self.limiter.check(admission.limits)
            admission.headers.update(gcra.headers(admission.limits, decisions))
            if not allowed:
                raise OverLimit("rate limit exceeded for this API key; see the x-ratelimit-* headers",
                                admission.headers, gcra.retry_after_s(decisions))
        if self.cache is None:
            await self._budget(admission)
            return admission, None
        admission.mode = cache_mode(self.runtime.cache, parsed.model, cache_control, parsed.cache)
        if not admission.mode.used:
            admission.headers["x-aiub-cache"] = "bypass"
            await self._budget(admission)
            return admission, None
        key_body = parsed.body if parsed.native is None else {**parsed.body, "native": parsed.native}
        admission.key = cache_key(parsed.kind, key_body, principal.tenant)
        admission.ttl_s = ttl_for(self.runtime.cache, parsed.model)
        answer: CachedAnswer | None = None
        lookup: Lookup = "miss"
        if admission.mode.read:
            answer, lookup = await self.cache.get(admission.key)
        admission.headers["x-aiub-cache"] = lookup if admission.mode.read else "bypass"
        if answer is None:
            await self._budget(admission)
        return admission, answer

    async def _budget(self, admission: Admission) -> None:
        """Check and charge the key's budgets (a request the cache answers spends none); no
        budget, no cost: one attribute read."""
        record = admission.principal.record
        if record is None or not record.has_budget:
            return
        found = budgets.budgets(record.budget_tokens_day, record.budget_tokens_month, record.budget_cost_day,
                                record.budget_cost_month)
        admission.estimated_cost = budgets.cost(admission.estimated_prompt, self.prices.highest(admission.model))
        wanted = budgets.charges(admission.principal.tenant, found, self.clock(), admission.estimated_prompt,
                                 admission.estimated_cost)
        refusal = await self.budgets.check_and_charge(wanted)
        if refusal is not None:
            raise OverBudget(budgets.message(refusal, record.id),
                             retry_after=max(1.0, refusal.charge.resets_at - refusal.charge.at))
        admission.budget_charges = wanted

    async def release(self, admission: Admission) -> None:
        """A request that ended without a complete answer: its estimate goes back to its budgets."""
        if admission.budget_charges and not admission.settled:
            admission.settled = True
            await self.budgets.charge(budgets.settlement(admission.budget_charges, admission.estimated_prompt,
                                                         admission.estimated_cost, 0, 0.0))

    async def settle(self, admission: Admission, answer: CachedAnswer | None, prompt_tokens: int,
                     completion_tokens: int, provider: str | None = None) -> None:
        """A complete, successful answer: count its usage, store it, and charge the tokens the
        estimate did not cover."""
        price = self.prices.of_provider(provider, admission.model)
        spend = budgets.cost(prompt_tokens + completion_tokens, price)
        self.usage.add(tenant_name(admission.principal.tenant), admission.model, provider or "", prompt_tokens,
                       completion_tokens, spend)
        if admission.budget_charges and not admission.settled:
            admission.settled = True
            deltas = budgets.settlement(admission.budget_charges, admission.estimated_prompt,
                                        admission.estimated_cost, prompt_tokens + completion_tokens, spend)
            if deltas:
                await self.budgets.charge(deltas)
        charges = usage_limits.completion_charges(admission.limits, admission.estimated_prompt, prompt_tokens,
                                                  completion_tokens)
        if charges:
            await self.limiter.charge(charges)
        if (answer is not None and self.cache is not None and admission.key is not None
                and admission.mode is not None and admission.mode.write):
            await self.cache.put(admission.key, answer, admission.ttl_s)
