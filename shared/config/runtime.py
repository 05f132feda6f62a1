"""`aiub.yaml`: deadlines and the gateway's, workers', Redis, cache, auth and limit settings.

Every section has defaults: the file is optional and each key in it too.
"""

from __future__ import annotations

from pydantic import Field, NonNegativeFloat, PrivateAttr

from shared.config.base import Strict as _Strict


class Deadlines(_Strict):
    """How long a caller waits for each stage of an attempt (DESIGN.md, a request's life)."""

    accepted_s: float = Field(default=2.0, gt=0)
    first_token_s: float = Field(default=60.0, gt=0)
    idle_s: float = Field(default=10.0, gt=0)
    # Silence after which the caller asks NATS whether the worker still exists; above the
    # workers' heartbeat_s (1 s) so a live worker is never asked.
    liveness_s: float = Field(default=3.0, gt=0)
    total_s: float = Field(default=600.0, gt=0)
    retry_budget: int = Field(default=2, ge=0)  # extra attempts after the first


class RedisSettings(_Strict):
    """Redis for the cache, virtual keys and rate limits; the URL comes from the environment only
    (read once by load_config: `url()`)."""

    url_env: str = "REDIS_URL"  # unset or empty: in-process cache and limits, keys in a file
    socket_timeout_s: float = Field(default=0.1, gt=0)  # redis-py has no timeout by default: a slow Redis is down
    connect_timeout_s: float = Field(default=0.2, gt=0)
    retry_after_s: float = Field(default=1.0, gt=0)  # after a failure, bypass Redis this long, then try again
    prefix: str = "aiub:"

    _url: str | None = PrivateAttr(default=None)

    def url(self) -> str | None:
        return self._url

    def with_url(self, value: str | None) -> RedisSettings:
        """These settings holding the content of `url_env`, as load_config read it."""
        settings = self.model_copy()
        settings._url = value or None
        return settings


class CacheSettings(_Strict):
    enabled: bool = True
    ttl_s: float = Field(default=3600.0, gt=0)
    model_ttl_s: dict[str, NonNegativeFloat] = {}  # per public model name; 0 = never cache that model
    max_entries: int = Field(default=10_000, gt=0)  # the in-process LRU's bound
    max_entry_bytes: int = Field(default=1024 * 1024, gt=0)  # larger answers are not stored


class AuthSettings(_Strict):
    master_key_env: str = "AIUB_MASTER_KEY"  # the env var holding the master key; never the key itself
    keys_file: str | None = None  # virtual keys without Redis; default <state dir>/keys.json
    min_master_key_chars: int = Field(default=16, ge=8)
    # The secret the gateway signs each request's key scope with and workers check it against
    # (shared/scope.py): set it wherever the bus is reachable by more than aiub's own services.
    bus_secret_env: str = "AIUB_BUS_SECRET"

    _master_key: str | None = PrivateAttr(default=None)
    _bus_secret: bytes | None = PrivateAttr(default=None)

    def master_key(self) -> str | None:
        return self._master_key

    def bus_secret(self) -> bytes | None:
        return self._bus_secret

    def with_secrets(self, master_key: str | None, bus_secret: str | None) -> AuthSettings:
        """These settings holding the contents of `master_key_env` and `bus_secret_env`, as
        load_config read them."""
        settings = self.model_copy()
        settings._master_key = master_key or None
        settings._bus_secret = bus_secret.encode() if bus_secret else None
        return settings


class ModelLimits(_Strict):
    rpm: int | None = Field(default=None, gt=0)  # per key and model
    tpm: int | None = Field(default=None, gt=0)
    max_tokens: int | None = Field(default=None, gt=0)  # cap; also the default when a request names none


class LimitSettings(_Strict):
    models: dict[str, ModelLimits] = {}
    max_header_bytes: int = Field(default=32 * 1024, gt=0)  # request line plus headers; beyond: 431
    max_headers: int = Field(default=100, gt=0)
    # From a request's first byte to the end of its headers; beyond: 408 and the connection closes.
    header_timeout_s: float = Field(default=10.0, gt=0)


class GatewaySettings(_Strict):
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # A body that stops arriving for this long is a 408: a stalled upload holds a connection.
    body_timeout_s: float = Field(default=30.0, gt=0)
    max_messages: int = Field(default=2048, gt=0)
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are listed
    # How long a stored Responses API response (`store`, `previous_response_id`) is kept: the
    # age of the JetStream KV bucket's entries. OpenAI keeps them 30 days.
    responses_ttl_s: float = Field(default=30 * 24 * 3600.0, gt=0)


class WorkerSettings(_Strict):
    heartbeat_s: float = Field(default=1.0, gt=0)
    # How often a running attempt asks its caller whether it still waits: a killed gateway sends
    # no Cancel, and its generations would hold the backend's slots until their deadlines.
    caller_check_s: float = Field(default=5.0, gt=0)
    load_report_s: float = Field(default=0.5, gt=0)
    # How often a worker reads its backends' `load_endpoint` (providers.yaml); never per request.
    backend_load_s: float = Field(default=1.0, gt=0)


class RuntimeFile(_Strict):
    deadlines: Deadlines = Deadlines()
    gateway: GatewaySettings = GatewaySettings()
    worker: WorkerSettings = WorkerSettings()
    redis: RedisSettings = RedisSettings()
    cache: CacheSettings = CacheSettings()
    auth: AuthSettings = AuthSettings()
    limits: LimitSettings = LimitSettings()


