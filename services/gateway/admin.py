"""The admin API under `/admin`: virtual keys, usage and provider states, for the master key only.

Who may call, decided before anything else (docs/admin-api.md):
- the master key: yes;
- a virtual key, valid or not for inference, whatever models it may use: 403;
- no key, a wrong key: 401; and with auth off (loopback, no master key) every admin call is a
  401 that says so: the admin API hands out keys, so it is never open to anonymous callers.
Errors are OpenAI's error JSON, from shared/errors.py, like every other answer of the gateway.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from nats.js.errors import BucketNotFoundError, KeyDeletedError, KeyNotFoundError, NoKeysError
from nats.js.kv import KeyValue

from services.gateway import keys, usage
from services.gateway.admin_models import (
    ConfigHistory,
    ConfigRevisionFiles,
    ConfigRevisionInfo,
    CreatedKey,
    KeyCreate,
    KeyInfo,
    KeyList,
    KeyUpdate,
    ProviderInfo,
    ProviderList,
    UsageEntry,
    UsageReport,
)
from services.gateway.key_store import KeyStore, KeyStoreUnavailable
from services.gateway.state import GatewayState
from shared import config_store, subjects
from shared.config.revisions import Revision
from shared.errors import AiubError, BadRequest, ClientError, Forbidden, ServiceUnavailable, Unauthorized
from shared.messages import state_decoder

TAG = "admin"


def add_routes(app: FastAPI, state: GatewayState) -> None:
    api = router(state)
    app.include_router(api)
    cached: dict[str, Any] = {}

    def schema() -> dict[str, Any]:
        # The admin API's routes only: the inference routes and front doors take free-form JSON
        # (docs/api.md), and the front doors' HEAD twins would repeat operation ids.
        if not cached:
            routes = [r for r in api.routes if isinstance(r, APIRoute)]
            cached.update(get_openapi(title="aiub admin API", version="1", routes=routes,
                                      description="Keys, usage and provider states; master key only "
                                                  "(docs/admin-api.md)."))
            cached.setdefault("components", {})["securitySchemes"] = {
                "masterKey": {"type": "http", "scheme": "bearer", "description": "the gateway's master key"}}
            cached["security"] = [{"masterKey": []}]
        return cached

    app.openapi = schema  # type: ignore[method-assign]


def router(state: GatewayState) -> APIRouter:
    async def master_only(request: Request) -> None:
        await require_master(state, request.headers.get("authorization"))

    api = APIRouter(prefix="/admin", tags=[TAG], dependencies=[Depends(master_only)],
                    responses={401: {"description": "no key, a wrong key, or auth is off"},
                               403: {"description": "a virtual key"}})
    _add_key_routes(api, state.policies.auth.store)
    _add_usage_route(api, state)
    _add_provider_route(api, state)
    _add_config_routes(api, state)
    return api


def _add_key_routes(api: APIRouter, store: KeyStore) -> None:
    async def _get(key_id: str) -> keys.KeyRecord:
        record = await store.get(key_id) if keys.valid_id(key_id) else None
        if record is None:
            raise ClientError(404, f"no key with id {key_id!r}", param="id", code="key_not_found")
        return record

    @api.post("/keys", response_model=CreatedKey, status_code=201, summary="Create a virtual key")
    async def create_key(body: KeyCreate) -> CreatedKey:
        """The answer holds the key's secret; it is stored hashed and never shown again."""
        now = time.time()
        models = tuple(m for m in body.models if m)
        key, record = keys.new_key(now, name=body.name, models=models, rpm=body.rpm, tpm=body.tpm,
                                   expires_at=_expiry(body.expires, now),
                                   budgets={f: getattr(body, f) for f in keys.BUDGET_FIELDS})
        await _put(record)
        return CreatedKey(key=key, **KeyInfo.of(record, now).model_dump())

    @api.get("/keys", response_model=KeyList, summary="List virtual keys (never their secrets)")
    async def list_keys() -> KeyList:
        now = time.time()
        try:
            records = await store.all()
        except KeyStoreUnavailable as e:
            raise _unavailable(e) from None
        return KeyList(data=[KeyInfo.of(r, now) for r in records])

    @api.get("/keys/{key_id}", response_model=KeyInfo, summary="One virtual key")
    async def get_key(key_id: str) -> KeyInfo:
        return KeyInfo.of(await _get(key_id), time.time())

    @api.patch("/keys/{key_id}", response_model=KeyInfo, summary="Change a key's limits, budgets, models, expiry")
    async def update_key(key_id: str, body: KeyUpdate) -> KeyInfo:
        """Fields left out stay; `null` removes a limit or budget. The change applies to the key's next
        request on every gateway."""
        record = await _get(key_id)
        if record.revoked_at is not None:  # a change to a key that can never be used again misleads
            raise ClientError(409, f"key {key_id} is revoked: create a new key", code="key_revoked")
        now = time.time()
        record = msgspec.structs.replace(record, **_changes(body, now))
        await _put(record)
        return KeyInfo.of(record, now)

    @api.delete("/keys/{key_id}", response_model=KeyInfo, summary="Revoke a key")
    async def revoke_key(key_id: str) -> KeyInfo:
        """The record stays (listed as revoked); the key stops working on its next request."""
        record = await _get(key_id)
        now = time.time()
        if record.revoked_at is None:
            record = msgspec.structs.replace(record, revoked_at=now)
            await _put(record)
        return KeyInfo.of(record, now)

    async def _put(record: keys.KeyRecord) -> None:
        try:
            await store.put(record)
        except KeyStoreUnavailable as e:
            raise _unavailable(e) from None



def _add_usage_route(api: APIRouter, state: GatewayState) -> None:
    @api.get("/usage", response_model=UsageReport, summary="Token usage and cost per key, model, provider, day")
    async def usage_report(
            key: Annotated[str | None, Query(description="a key id, master or anonymous")] = None,
            model: str | None = None, provider: str | None = None,
            since: Annotated[str | None, Query(description="first day, YYYY-MM-DD (default: 29 days ago)")] = None,
            until: Annotated[str | None, Query(description="last day, YYYY-MM-DD (default: today, UTC)")] = None,
            group_by: Annotated[str, Query(description="columns to keep, comma-separated")] = "key,model,day",
    ) -> UsageReport:
        first, last, days, groups = _range(since, until, group_by)
        recorder = state.policies.usage
        if recorder.store is None:
            raise ServiceUnavailable("usage is not available until the gateway is connected", code="usage_unavailable")
        await recorder.flush()  # this gateway's last second too
        try:
            rows = await recorder.store.read(days)
        except Exception as e:
            raise AiubError(f"the usage store ({recorder.store.where}) did not answer: {type(e).__name__}",
                            code="usage_unavailable") from None
        grouped = usage.group(usage.select(rows, key=key, model=model, provider=provider), groups)
        return UsageReport(since=first, until=last, group_by=list(groups), data=[
            UsageEntry(day=r.day, key=r.key, model=r.model, provider=r.provider, requests=r.requests,
                       prompt_tokens=r.prompt_tokens, completion_tokens=r.completion_tokens,
                       total_tokens=r.total_tokens, cost=r.cost) for r in grouped])



def _add_provider_route(api: APIRouter, state: GatewayState) -> None:
    @api.get("/providers", response_model=ProviderList, summary="Provider states, as the health service keeps them")
    async def providers() -> ProviderList:
        return await _provider_states(state)


async def _provider_states(state: GatewayState) -> ProviderList:
    nc = state.nc
    if nc is None or not state.bus_health.connected:
        raise ServiceUnavailable("the gateway is not connected to NATS", code="bus_unavailable")
    try:
        kv = await nc.jetstream().key_value(subjects.HEALTH_BUCKET)
    except BucketNotFoundError:
        return ProviderList(data=[], health_found=False)
    try:
        names = await kv.keys()
    except NoKeysError:
        names = []
    found: list[ProviderInfo] = []
    for name in sorted(names):
        if name.startswith("_"):  # the leader's heartbeat and lease
            continue
        try:
            entry = await kv.get(name)
            s = state_decoder.decode(entry.value or b"")
        except (KeyNotFoundError, KeyDeletedError, msgspec.DecodeError, msgspec.ValidationError):
            continue
        found.append(ProviderInfo(provider=s.provider, state=s.state, previous=s.previous, reason=s.reason,
                                  since=s.since, admit_fraction=s.admit_fraction, open_until=s.open_until,
                                  probe_latency_s=s.probe_latency_s, probed_at=s.probed_at))
    return ProviderList(data=found, health_found=True)


def _add_config_routes(api: APIRouter, state: GatewayState) -> None:
    """Config revisions, read only: pushing one goes through `aiub config push`, whose checks
    (`aiub validate`) belong to the operator tool, not the gateway."""

    @api.get("/config", response_model=ConfigHistory, summary="Config revisions on the bus (aiub config history)")
    async def config_history() -> ConfigHistory:
        kv = await _config_bucket(state)
        if kv is None:
            return ConfigHistory(data=[], current=None, gateway_runs=_gateway_runs(state))
        running, _ = await config_store.current(kv)
        current = running.number if running is not None else None
        return ConfigHistory(data=[_revision_info(r, current) for r in await config_store.history(kv)],
                             current=current, gateway_runs=_gateway_runs(state))

    @api.get("/config/{number}", response_model=ConfigRevisionFiles, summary="One config revision and its files")
    async def config_revision(number: int) -> ConfigRevisionFiles:
        kv = await _config_bucket(state)
        found = await config_store.revision(kv, number) if kv is not None else None
        if found is None:
            raise ClientError(404, f"no config revision {number}", param="number", code="revision_not_found")
        running, _ = await config_store.current(kv) if kv is not None else (None, None)
        info = _revision_info(found, running.number if running is not None else None)
        return ConfigRevisionFiles(**info.model_dump(), texts=dict(found.files))


async def _config_bucket(state: GatewayState) -> KeyValue | None:
    nc = state.nc
    if nc is None or not state.bus_health.connected:
        raise ServiceUnavailable("the gateway is not connected to NATS", code="bus_unavailable")
    try:
        return await config_store.open_bucket(nc.jetstream(), create=False)
    except BucketNotFoundError:
        return None  # nobody has pushed a revision yet


def _revision_info(revision: Revision, current: int | None) -> ConfigRevisionInfo:
    return ConfigRevisionInfo(number=revision.number, pushed_at=revision.pushed_at, source=revision.source,
                              files=sorted(revision.files), current=revision.number == current)


def _gateway_runs(state: GatewayState) -> int:
    return state.live.number if state.live is not None else 0


def _changes(body: KeyUpdate, now: float) -> dict[str, Any]:
    """A PATCH's fields as the key record's: left out stays, `null` removes a limit or budget."""
    changes: dict[str, Any] = {}
    for name in body.model_fields_set:
        value = getattr(body, name)
        if name == "expires":
            changes["expires_at"] = _expiry(value or "never", now)
        elif name == "models":
            changes["models"] = tuple(m for m in value or () if m)
        elif name == "name":
            changes["name"] = value or ""
        else:
            changes[name] = value
    return changes


async def require_master(state: GatewayState, authorization: str | None, what: str = "the admin API") -> None:
    """Returns for the master key; raises Unauthorized (no key, a wrong key, auth off) or Forbidden
    (a virtual key). The GraphQL interface (graphql_api/) asks the same."""
    auth = state.policies.auth
    if not auth.required:
        raise Unauthorized(f"{what} needs the master key, and auth is off on this gateway (no master key "
                           f"is set): set {state.config.runtime.auth.master_key_env} and restart it",
                           code="admin_requires_master_key")
    principal = await auth.authenticate(authorization)
    if principal.key_id is not None or principal.tenant != "master":
        raise Forbidden(f"{what} takes the master key only, not a virtual key", code="admin_forbidden")


def _expiry(text: str, now: float) -> float | None:
    try:
        return keys.parse_expiry(text, now)
    except ValueError as e:
        raise BadRequest(str(e), param="expires") from None


def _range(since: str | None, until: str | None, group_by: str) -> tuple[str, str, list[str], tuple[usage.Group,
                                                                                                    ...]]:
    try:
        first, last = usage.default_range(time.time())
        first = usage.parse_day(since) if since else first
        last = usage.parse_day(until) if until else last
        return first, last, usage.days_between(first, last), usage.parse_groups(group_by)
    except ValueError as e:
        raise BadRequest(str(e)) from None


def _unavailable(error: KeyStoreUnavailable) -> AiubError:
    return AiubError(f"the key store is unavailable: {error}", code="key_store_unavailable")

