"""The GraphQL schema: queries over providers, routes, keys, usage and recent requests, and
subscriptions to health transitions and live request records (docs/graphql.md).

Resolvers read what the gateway already holds: the config, the provider states it follows
(live.py), the key store and usage recorder of its policies. Nothing here is on the chat path.
The context (endpoint.py) holds the gateway's state under "state" and the live feeds under "live".
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from strawberry.types import Info

from services.gateway import keys
from services.gateway import usage as usage_rows
from services.gateway.graphql_api import limits
from services.gateway.graphql_api.live import Live
from services.gateway.graphql_api.objects import (
    HealthTransition,
    Key,
    Provider,
    Request,
    Route,
    Usage,
)
from services.gateway.graphql_api.route_preview import preview
from services.gateway.key_store import KeyStoreUnavailable
from services.gateway.state import GatewayState
from shared.errors import AiubError, BadRequest, ServiceUnavailable

RECENT_DEFAULT = 50
USAGE_DEFAULT = 500
# Items each list field counts for in the cost limit when no `limit` sets it (limits.py).
LIST_SIZES = {"providers": limits.LIST_GUESS, "models": limits.LIST_GUESS, "keys": limits.LIST_GUESS,
              "attempts": 4, "fallbackChain": limits.LIST_GUESS, "recentRequests": RECENT_DEFAULT,
              "usage": USAGE_DEFAULT}


def _state(info: Info[Any, None]) -> GatewayState:
    found: GatewayState = info.context["state"]
    return found


def _live(info: Info[Any, None]) -> Live:
    found: Live = info.context["live"]
    return found


def _route_of(root: Model, info: Info[Any, None]) -> Route:
    return Route.of(preview(_state(info).config, root.name, _live(info).health.states, time.monotonic()))


@strawberry.type(description="A model the config names, and the route it takes now")
class Model:
    name: str
    route: Route = strawberry.field(resolver=_route_of, description="who serves it now, and what is next in its chain")


def _providers(info: Info[Any, None]) -> list[Provider]:
    states = _live(info).health.states
    return [Provider.of(name, spec, states.get(name)) for name, spec in _state(info).config.providers.items()]


def _provider(info: Info[Any, None], name: str) -> Provider | None:
    spec = _state(info).config.providers.get(name)
    return Provider.of(name, spec, _live(info).health.states.get(name)) if spec is not None else None


def _models(info: Info[Any, None]) -> list[Model]:
    return [Model(name=name) for name in _state(info).config.public_models()]


def _route(info: Info[Any, None], model: str, capability: str | None = None) -> Route:
    return Route.of(preview(_state(info).config, model, _live(info).health.states, time.monotonic(), capability))


async def _keys(info: Info[Any, None]) -> list[Key]:
    store = _state(info).policies.auth.store
    try:
        records = await store.all()
    except KeyStoreUnavailable as e:
        raise AiubError(f"the key store is unavailable: {e}", code="key_store_unavailable") from None
    now = time.time()
    return [Key.of(r, now) for r in records]


async def _key(info: Info[Any, None], id: str) -> Key | None:
    record = await _state(info).policies.auth.store.get(id) if keys.valid_id(id) else None
    return Key.of(record, time.time()) if record is not None else None


async def _usage(info: Info[Any, None], key: str | None = None, model: str | None = None,
                 provider: str | None = None, since: str | None = None, until: str | None = None,
                 group_by: str = "key,model,day", limit: int = USAGE_DEFAULT) -> list[Usage]:
    try:
        first, last = usage_rows.default_range(time.time())
        days = usage_rows.days_between(usage_rows.parse_day(since) if since else first,
                                       usage_rows.parse_day(until) if until else last)
        groups = usage_rows.parse_groups(group_by)
    except ValueError as e:
        raise BadRequest(str(e)) from None
    recorder = _state(info).policies.usage
    if recorder.store is None:
        raise ServiceUnavailable("usage is not available until the gateway is connected", code="usage_unavailable")
    await recorder.flush()  # this gateway's last second too
    try:
        rows = await recorder.store.read(days)
    except Exception as e:
        raise AiubError(f"the usage store ({recorder.store.where}) did not answer: {type(e).__name__}",
                        code="usage_unavailable") from None
    grouped = usage_rows.group(usage_rows.select(rows, key=key, model=model, provider=provider), groups)
    return [Usage.of(r) for r in grouped[:max(limit, 0)]]


def _recent_requests(info: Info[Any, None], limit: int = RECENT_DEFAULT, model: str | None = None,
                     provider: str | None = None, status: int | None = None) -> list[Request]:
    ring = _live(info).requests
    found: list[Request] = []
    for record in ring.newest(ring.size):
        if len(found) >= limit:
            break
        last = record.attempts[-1].provider if record.attempts else None
        if (model is None or record.model == model) and (provider is None or last == provider) \
                and (status is None or record.status == status):
            found.append(Request.of(record))
    return found


@strawberry.type
class Query:
    providers: list[Provider] = strawberry.field(resolver=_providers,
                                                 description="Every configured provider and its current state")
    provider: Provider | None = strawberry.field(resolver=_provider, description="One provider by name, or null")
    models: list[Model] = strawberry.field(resolver=_models,
                                           description="Every model name the config lets a client ask for")
    route: Route = strawberry.field(resolver=_route, description="The route any model name takes now (a pattern "
                                                                 "or a capability alias too)")
    keys: list[Key] = strawberry.field(resolver=_keys, description="Virtual keys (never their secrets)")
    key: Key | None = strawberry.field(resolver=_key, description="One virtual key by id, or null")
    usage: list[Usage] = strawberry.field(
        resolver=_usage, description="Token usage and cost, as GET /admin/usage: filter by key id (or master, "
                                     "anonymous), model, provider; since/until are YYYY-MM-DD (default: the last 30 "
                                     "days, UTC); groupBy names the columns kept")
    recent_requests: list[Request] = strawberry.field(
        resolver=_recent_requests, description="The newest request records this gateway saw on the bus (from every "
                                               "gateway), newest first")


async def _health_transitions(info: Info[Any, None],
                              provider: str | None = None) -> AsyncGenerator[HealthTransition, None]:
    async for transition in _live(info).health.transitions.follow():
        if provider is None or transition.provider == provider:
            yield HealthTransition.of(transition)


async def _requests(info: Info[Any, None], model: str | None = None) -> AsyncGenerator[Request, None]:
    async for record in _live(info).requests.feed.follow():
        if model is None or record.model == model:
            yield Request.of(record)


@strawberry.type
class Subscription:
    health_transitions: AsyncGenerator[HealthTransition, None] = strawberry.subscription(
        resolver=_health_transitions, description="Each change of a provider's state, as the health service writes it")
    requests: AsyncGenerator[Request, None] = strawberry.subscription(resolver=_requests,
                                                description="Each request record as a gateway publishes it")


def build() -> strawberry.Schema:
    return strawberry.Schema(query=Query, subscription=Subscription, extensions=limits.extensions(LIST_SIZES))
