"""Wire messages on the bus: msgspec Structs, JSON-encoded, readable with `nats sub`.

Rules (see DESIGN.md, "NATS protocol"):
- Structs are frozen and keyword-only; every field added later gets a default, and unknown
  fields are ignored on decode, so old and new services can share a bus.
- Frames sent to a caller's inbox form one tagged union (`type` field), decoded by one
  decoder and dispatched with `match`.
- OpenAI payloads produced by a worker (`Chunk.data`, `Result.data`) travel as `msgspec.Raw`:
  the gateway writes those bytes to the client without decoding and re-encoding them.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

RequestKind = Literal["chat", "completion", "embedding"]


class InferenceRequest(msgspec.Struct, frozen=True, kw_only=True):
    """One client request as the gateway (or any NATS client) publishes it to the routers."""

    id: str
    attempt: str
    kind: RequestKind
    model: str
    body: dict[str, Any]
    stream: bool = False
    deadline: float = 0.0  # wall-clock epoch seconds; 0 = none
    excluded: tuple[str, ...] = ()  # providers already tried for this request
    capability: str | None = None
    client_request_id: str | None = None  # the client's x-request-id: logged, never a subject
    attempt_number: int = 1
    # Context-window fallbacks taken so far, one per `context_length_exceeded` error: the router
    # maps it to a model with a larger window from `context_window_fallbacks`.
    context_fallback: int = 0
    # The caller's key scope, signed (shared/scope.py): with a bus secret set, workers serve
    # only requests whose scope is valid and allows the model, whoever published them.
    scope: str | None = None
    # Set by the router when it serves a different model than asked (capability alias, context
    # fallback): the name the caller asked for, which is what its scope was checked against.
    requested_model: str | None = None
    # The caller reads `Chunk.more`. A caller from before it existed leaves this false, so its
    # chunks come one per frame instead of being dropped as an unknown field.
    chunk_batches: bool = False
    # A front door's client body in its own dialect (`native_dialect`, e.g. "anthropic"), beside
    # its OpenAI translation in `body`: a worker whose backend speaks that dialect sends this one
    # (model replaced) instead of translating `body` back. Everyone else reads `body` only.
    native_body: dict[str, Any] | None = None
    native_dialect: str | None = None
    # The request's affinity key (shared/prefix.py: a session, a user, or its leading messages),
    # computed where the body is; the router's prefix_affinity strategy maps it to a provider.
    # None: the router derives it from `body` itself.
    prefix_hash: str | None = None
    # A hedge: the caller's second attempt, racing a first one that has sent no token yet
    # (shared/hedging.py). The router skips paid providers for it unless the model's hedging
    # settings allow them, and never offers to hedge it again.
    hedge: bool = False


class WorkOrder(msgspec.Struct, frozen=True, kw_only=True):
    """What a router sends to `aiub.work.<provider>`: the request, where to stream, the target."""

    request: InferenceRequest
    reply_inbox: str
    provider: str
    backend_model: str
    routed_by: str = "exact"


class Accepted(msgspec.Struct, frozen=True, kw_only=True, tag="accepted"):
    attempt: str
    seq: int
    provider: str
    worker_id: str
    control: str  # subject on which the serving worker listens for `Cancel`


class Busy(msgspec.Struct, frozen=True, kw_only=True, tag="busy"):
    """A worker's reply to a router: every slot and the bounded queue are full."""

    attempt: str
    seq: int
    provider: str
    worker_id: str


class Chunk(msgspec.Struct, frozen=True, kw_only=True, tag="chunk"):
    """OpenAI chunk objects (chat.completion.chunk / text_completion): `data`, then `more`.

    `more` holds the objects that the same read from the backend completed after `data`, for
    callers whose request set `chunk_batches`: a backend keeping pace with its reader gives one
    object per frame, so nothing waits, and a backend that got ahead (or a worker that fell
    behind) has its backlog sent in one message instead of one per token.
    """

    attempt: str
    seq: int
    data: msgspec.Raw
    more: tuple[msgspec.Raw, ...] = ()

    @property
    def payloads(self) -> tuple[msgspec.Raw, ...]:
        return (self.data, *self.more)

    def text(self) -> str:
        """The text this frame adds (chat deltas' content, or completions' text), for a reader:
        `data` itself is the raw OpenAI object, left undecoded on the hot path."""
        return "".join(_choice_text(msgspec.json.decode(payload)) for payload in self.payloads)


class Result(msgspec.Struct, frozen=True, kw_only=True, tag="result"):
    attempt: str
    seq: int
    data: msgspec.Raw  # the whole OpenAI response object, or `null` after `ResultPart`s
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def text(self) -> str:
        """The answer's text (a chat message's content, or a completion's text); "" for
        embeddings, and for a result sent in `ResultPart`s (the parts hold it)."""
        return _choice_text(msgspec.json.decode(self.data))


def _choice_text(obj: Any) -> str:
    """The first choice's text in an OpenAI chat or completion object, chunk or whole."""
    choices = obj.get("choices") if isinstance(obj, dict) else None
    if not choices or not isinstance(choices[0], dict):
        return ""
    choice = choices[0]
    message = choice.get("delta") or choice.get("message") or {}
    text = message.get("content") if isinstance(message, dict) else None
    if text is None:
        text = choice.get("text")
    return text if isinstance(text, str) else ""


class ResultPart(msgspec.Struct, frozen=True, kw_only=True, tag="result_part"):
    """A slice of a result too large for one NATS message; the `Result` that follows ends it."""

    attempt: str
    seq: int
    data: bytes


class Heartbeat(msgspec.Struct, frozen=True, kw_only=True, tag="heartbeat"):
    attempt: str
    seq: int


class Done(msgspec.Struct, frozen=True, kw_only=True, tag="done"):
    attempt: str
    seq: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    provider: str | None = None  # who answered


class ErrorBody(msgspec.Struct, frozen=True, kw_only=True):
    """OpenAI's error object, as the client sees it."""

    message: str
    type: str
    param: str | None = None
    code: str | None = None


# `ErrorBody.code` of a backend's "the prompt does not fit the model's context window": the
# caller retries on a larger-context model (`context_window_fallbacks`), not another provider.
CONTEXT_LENGTH_EXCEEDED = "context_length_exceeded"


class Error(msgspec.Struct, frozen=True, kw_only=True, tag="error"):
    attempt: str
    seq: int
    status: int
    error: ErrorBody
    retryable: bool = False
    retry_after: float | None = None
    provider: str | None = None


class HedgeOffer(msgspec.Struct, frozen=True, kw_only=True, tag="hedge_offer"):
    """The router's word to the caller, after a worker accepted an attempt of a model with
    `hedging` settings: if this attempt has sent no token `after_s` after it started, a second
    attempt elsewhere is worth starting (budget permitting). Not in the worker's sequence
    (`seq` -1). A caller that does not hedge ignores it; one from before it drops it unread."""

    attempt: str
    seq: int = -1
    provider: str  # the accepting provider, to exclude from the hedge
    after_s: float
    max_fraction: float
    group: str  # whose budget: the model name the hedging settings are keyed by


Frame = Accepted | Busy | Chunk | Result | ResultPart | Heartbeat | Done | Error | HedgeOffer


CancelReason = Literal["client_gone", "deadline"]

# Liveness probes are empty NATS requests. A caller asked on an attempt's inbox says whether it
# still waits for it. A worker asked on its control subject about the attempt in the probe's
# `ATTEMPT_HEADER` says whether it still runs it: an attempt it finished while its caller waits
# means the last frames were lost on the way (a bus restart), not that they are slow.
# A process that is gone cannot answer: NATS replies `no responders` at once.
ATTEMPT_HEADER = "Aiub-Attempt"
ATTEMPT_WANTED = b"1"
ATTEMPT_RUNNING = b"1"
ATTEMPT_UNKNOWN = b"0"

# Error codes about one worker process, not its provider: a retry goes to the same provider.
WORKER_GONE = "worker_gone"  # the worker serving an attempt stopped existing
WORKER_UNRESPONSIVE = "worker_unresponsive"  # the worker NATS handed the request to never answered
FRAMES_LOST = "frames_lost"  # frames of an attempt never reached its caller (the bus lost them)


class Cancel(msgspec.Struct, frozen=True, kw_only=True):
    """Stop an attempt. `deadline`: the caller stopped waiting, and `stalled` says whether because
    the provider missed the first-token or idle deadline (its failure) or because the request's
    own budget, which its client may have chosen, ran out; `client_gone`: nobody listens any more.
    (`stalled` is a field, not a third reason, so that workers from before it still obey.)"""

    attempt: str
    reason: CancelReason
    stalled: bool = False


OutcomeKind = Literal[
    "ok", "client_error", "server_error", "rate_limited", "timeout", "connection", "truncated",
    "cancelled", "deadline",
]


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """A worker's account of one attempt, for the health service, the routers and dashboards."""

    provider: str
    model: str
    request_id: str
    attempt: str
    worker_id: str
    kind: OutcomeKind
    status: int = 200
    latency_s: float = 0.0
    ttft_s: float | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retry_after: float | None = None
    at: float = 0.0

    @property
    def upstream_failure(self) -> bool:
        """Failures that speak about the provider's health: never a client's 4xx, a cancel or the
        request's own deadline (a client that allows 2 s must not take a slow provider down for
        everyone; a provider that stalls is caught by the first-token and idle deadlines, `timeout`)."""
        return self.kind in ("server_error", "timeout", "connection", "truncated")


class LoadReport(msgspec.Struct, frozen=True, kw_only=True):
    """Absolute counts, so one lost report costs nothing: the next one replaces it."""

    provider: str
    worker_id: str
    in_flight: int
    queued: int
    capacity: int
    queue_capacity: int
    at: float
    # The backend's own load, read from its load endpoint (`load_endpoint` in providers.yaml) by
    # the worker's poller; None when the backend has none or the last read failed. Every worker
    # of a provider reads the same backend: the router takes the freshest, never the sum.
    backend_running: int | None = None
    backend_waiting: int | None = None
    backend_kv_usage: float | None = None


StateName = Literal["active", "degraded", "unavailable", "cooldown"]


class ProviderState(msgspec.Struct, frozen=True, kw_only=True):
    provider: str
    state: StateName = "active"
    previous: StateName | None = None
    reason: str = ""
    since: float = 0.0
    seq: int = 0
    admit_fraction: float = 1.0
    open_until: float | None = None  # epoch seconds: unavailable until then (a 429's Retry-After, or the open period)
    opened: int = 0  # consecutive open periods since the provider was last active: sets the next one's length
    resume: StateName | None = None  # set while unavailable only for a 429: the state to return to afterwards
    probe_latency_s: float | None = None  # the last passing active probe
    probed_at: float | None = None

    @property
    def routable(self) -> bool:
        return self.state != "unavailable" and self.admit_fraction > 0.0


class AttemptRecord(msgspec.Struct, frozen=True, kw_only=True):
    attempt: str
    provider: str | None
    worker_id: str | None
    status: int
    error: str | None = None
    latency_s: float = 0.0


class RequestRecord(msgspec.Struct, frozen=True, kw_only=True):
    """The gateway's account of one client request, published when it ends."""

    request_id: str
    client_request_id: str | None
    model: str
    kind: RequestKind
    stream: bool
    status: int
    cache_hit: bool
    latency_s: float
    ttft_s: float | None
    attempts: tuple[AttemptRecord, ...] = ()
    at: float = 0.0
    # What the client was told in `x-aiub-cache`: "hit", "miss" or "bypass" (it asked for a
    # fresh answer, or its model is not cached); "" when the gateway has no cache.
    cache: str = ""


class ModelList(msgspec.Struct, frozen=True, kw_only=True):
    """A worker's answer on `aiub.models.<provider>`: the model names its backend serves."""

    provider: str
    models: tuple[str, ...] = ()
    listed: bool = True  # False: this backend's API has no model list
    error: str | None = None  # the backend could not be asked (unreachable, refused): models is empty


frame_decoder = msgspec.json.Decoder(Frame)
request_decoder = msgspec.json.Decoder(InferenceRequest)
work_decoder = msgspec.json.Decoder(WorkOrder)
cancel_decoder = msgspec.json.Decoder(Cancel)
outcome_decoder = msgspec.json.Decoder(Outcome)
load_decoder = msgspec.json.Decoder(LoadReport)
state_decoder = msgspec.json.Decoder(ProviderState)
record_decoder = msgspec.json.Decoder(RequestRecord)
model_list_decoder = msgspec.json.Decoder(ModelList)
encode = msgspec.json.Encoder().encode
