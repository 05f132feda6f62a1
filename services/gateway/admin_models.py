"""The admin API's request and response bodies (admin.py), as pydantic models so FastAPI puts them
in the gateway's OpenAPI schema. Request bodies refuse unknown fields: a misspelt limit must not
be silently ignored."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from services.gateway import keys

# `true` is not a count (it read as 1), and 1e400 is no budget (it read as infinity, stored as none).
Count = Annotated[int, Field(gt=0, strict=True)]
Money = Annotated[float, Field(gt=0, allow_inf_nan=False)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class KeyLimits(_Request):
    """Limits and budgets; in an update, a field left out stays as it is and `null` removes it."""

    rpm: Count | None = Field(default=None, description="requests per minute")
    tpm: Count | None = Field(default=None, description="tokens per minute (prompt + completion)")
    budget_tokens_day: Count | None = Field(default=None, description="tokens per UTC day")
    budget_tokens_month: Count | None = Field(default=None, description="tokens per UTC calendar month")
    budget_cost_day: Money | None = Field(default=None, description="cost per UTC day (cost_per_1k_tokens)")
    budget_cost_month: Money | None = Field(default=None, description="cost per UTC calendar month")


class KeyCreate(KeyLimits):
    name: str = Field(default="", max_length=200, description="a label for listings")
    models: list[str] = Field(default_factory=list, description="models or globs the key may use; empty: all")
    expires: str = Field(default="never", description="30d, 12h, 90m, an ISO date, or never")


class KeyUpdate(KeyLimits):
    name: str | None = Field(default=None, max_length=200)
    models: list[str] | None = None
    expires: str | None = Field(default=None, description="30d, 12h, 90m, an ISO date, or never")


class KeyInfo(BaseModel):
    """A key as listed: never its secret, never its hash."""

    id: str
    name: str
    status: Literal["active", "expired", "revoked"]
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
    def of(cls, record: keys.KeyRecord, now: float) -> KeyInfo:
        return cls(id=record.id, name=record.name, status=keys.status(record, now),  # type: ignore[arg-type]
                   models=list(record.models), rpm=record.rpm, tpm=record.tpm,
                   budget_tokens_day=record.budget_tokens_day, budget_tokens_month=record.budget_tokens_month,
                   budget_cost_day=record.budget_cost_day, budget_cost_month=record.budget_cost_month,
                   created_at=record.created_at, expires_at=record.expires_at, revoked_at=record.revoked_at)


class CreatedKey(KeyInfo):
    key: str = Field(description="the secret: shown in this answer only, never again")


class KeyList(BaseModel):
    object: Literal["list"] = "list"
    data: list[KeyInfo]


class UsageEntry(BaseModel):
    day: str = Field(description="YYYY-MM-DD (UTC), or * when not grouped by day")
    key: str = Field(description="a virtual key's id, master or anonymous; * when not grouped by key")
    model: str
    provider: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: float


class UsageReport(BaseModel):
    object: Literal["list"] = "list"
    since: str
    until: str
    group_by: list[str]
    data: list[UsageEntry]


class ProviderInfo(BaseModel):
    provider: str
    state: str
    previous: str | None
    reason: str
    since: float
    admit_fraction: float
    open_until: float | None
    probe_latency_s: float | None
    probed_at: float | None


class ProviderList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ProviderInfo]
    health_found: bool = Field(description="false when no health service has written its bucket yet")


class ConfigRevisionInfo(BaseModel):
    number: int
    pushed_at: float = Field(description="the pusher's wall clock, epoch seconds")
    source: str = Field(description='where it came from: "aiub config push DIR", "aiub up", "dashboard", '
                                    '"rollback to 3"')
    files: list[str] = Field(description="the file names it holds")
    current: bool = Field(description="the revision every service runs now")


class ConfigHistory(BaseModel):
    object: Literal["list"] = "list"
    data: list[ConfigRevisionInfo] = Field(description="every revision, oldest first")
    current: int | None = Field(description="the bucket's current revision; null before any push")
    gateway_runs: int = Field(description="the revision this gateway applied; 0: the files it was started with")


class ConfigRevisionFiles(ConfigRevisionInfo):
    texts: dict[str, str] = Field(description="each file's text as it was pushed")
