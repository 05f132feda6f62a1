"""The GraphQL object types (schema.py answers with them) and how each is made from what the
gateway holds. A key is never shown with its secret or its hash."""

from __future__ import annotations

import strawberry

from services.gateway import keys
from services.gateway.graphql_api.live import Transition
from services.gateway.graphql_api.route_preview import Preview, Step
from services.gateway.usage import UsageRow
from shared.config import ProviderSpec
from shared.messages import ProviderState, RequestRecord


@strawberry.type(description="A provider's state as the health service keeps it (the aiub_health KV bucket)")
class HealthState:
    state: str
    previous: str | None
    reason: str
    since: float
    admit_fraction: float
    open_until: float | None
    probe_latency_s: float | None
    probed_at: float | None
    routable: bool

    @classmethod
    def of(cls, s: ProviderState) -> HealthState:
        return cls(state=s.state, previous=s.previous, reason=s.reason, since=s.since,
                   admit_fraction=s.admit_fraction, open_until=s.open_until, probe_latency_s=s.probe_latency_s,
                   probed_at=s.probed_at, routable=s.routable)


@strawberry.type(description="A configured provider and its current state (null: none published yet)")
class Provider:
    name: str
    type: str
    status: str = strawberry.field(description="active or disabled, in providers.yaml")
    description: str
    max_concurrency: int
    models: list[str]
    health: HealthState | None

    @classmethod
    def of(cls, name: str, spec: ProviderSpec, state: ProviderState | None) -> Provider:
        return cls(name=name, type=spec.type, status=spec.status, description=spec.description,
                   max_concurrency=spec.max_concurrency, models=list(spec.models),
                   health=HealthState.of(state) if state is not None else None)


@strawberry.type(description="One provider in a model's route")
class RouteStep:
    provider: str
    routable: bool
    fallback: bool = strawberry.field(description="from the model's fallback chain, not its rule's pool")
    reason: str | None = strawberry.field(description="why it is not routable now")
    model: str | None = strawberry.field(description="the model it would run")
    backend_model: str | None

    @classmethod
    def of(cls, step: Step) -> RouteStep:
        return cls(provider=step.provider, routable=step.routable, fallback=step.fallback, reason=step.reason,
                   model=step.model, backend_model=step.backend_model)


@strawberry.type(description="The route a model takes now: routable providers first, in order, then the others")
class Route:
    model: str
    routed_by: str | None
    rule: str | None
    strategy: str | None
    serving: str | None = strawberry.field(description="the provider a request would go to first")
    next: str | None = strawberry.field(description="the one after it, if the first fails")
    providers: list[RouteStep]
    fallback_chain: list[str]
    refusal: str | None = strawberry.field(description="what a request is told when nothing can serve it")

    @classmethod
    def of(cls, p: Preview) -> Route:
        return cls(model=p.model, routed_by=p.routed_by, rule=p.rule, strategy=p.strategy, serving=p.serving,
                   next=p.next, providers=[RouteStep.of(s) for s in p.steps], fallback_chain=list(p.fallback_chain),
                   refusal=p.refusal)


@strawberry.type(description="A virtual key as listed: never its secret, never its hash")
class Key:
    id: str
    name: str
    status: str
    models: list[str]
    rpm: int | None
    tpm: int | None
    budget_tokens_day: int | None
    budget_tokens_month: int | None
    budget_cost_day: float | None
    budget_cost_month: float | None
    created_at: float
    expires_at: float | None
    revoked_at: float | None

    @classmethod
    def of(cls, r: keys.KeyRecord, now: float) -> Key:
        return cls(id=r.id, name=r.name, status=keys.status(r, now), models=list(r.models), rpm=r.rpm, tpm=r.tpm,
                   budget_tokens_day=r.budget_tokens_day, budget_tokens_month=r.budget_tokens_month,
                   budget_cost_day=r.budget_cost_day, budget_cost_month=r.budget_cost_month,
                   created_at=r.created_at, expires_at=r.expires_at, revoked_at=r.revoked_at)


@strawberry.type(description="Usage summed over every column not grouped by (those read *)")
class Usage:
    day: str
    key: str
    model: str
    provider: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float

    @classmethod
    def of(cls, r: UsageRow) -> Usage:
        return cls(day=r.day, key=r.key, model=r.model, provider=r.provider, requests=r.requests,
                   prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
                   total_tokens=r.total_tokens, cost=r.cost)


@strawberry.type
class Attempt:
    attempt: str
    provider: str | None
    worker_id: str | None
    status: int
    error: str | None
    latency_s: float


@strawberry.type(description="A gateway's record of one client request (aiub.events.request)")
class Request:
    request_id: str
    client_request_id: str | None
    model: str
    kind: str
    stream: bool
    status: int
    cache_hit: bool
    cache: str
    latency_s: float
    ttft_s: float | None
    at: float
    provider: str | None = strawberry.field(description="the provider of its last attempt")
    attempts: list[Attempt]

    @classmethod
    def of(cls, r: RequestRecord) -> Request:
        return cls(request_id=r.request_id, client_request_id=r.client_request_id, model=r.model, kind=r.kind,
                   stream=r.stream, status=r.status, cache_hit=r.cache_hit, cache=r.cache, latency_s=r.latency_s,
                   ttft_s=r.ttft_s, at=r.at, provider=r.attempts[-1].provider if r.attempts else None,
                   attempts=[Attempt(attempt=a.attempt, provider=a.provider, worker_id=a.worker_id, status=a.status,
                                     error=a.error, latency_s=a.latency_s) for a in r.attempts])


@strawberry.type(description="A provider's state changed")
class HealthTransition:
    provider: str
    state: str
    previous: str | None = strawberry.field(description="null: the first state this gateway saw for it")
    reason: str
    at: float
    health: HealthState

    @classmethod
    def of(cls, t: Transition) -> HealthTransition:
        return cls(provider=t.provider, state=t.state, previous=t.previous, reason=t.reason, at=t.at,
                   health=HealthState.of(t.current))
