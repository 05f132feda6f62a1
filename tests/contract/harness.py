"""One worker, one simulated backend, one NATS server: the ground the contract suite stands on.

Each `Backend` says how to simulate one adapter's API (the simulator flavor, the model it
serves, the key it demands) and how a provider of that type is configured. The `Harness`
runs a real `Worker` in-process against a real nats-server, and drives it the way a router
does: a `WorkOrder` request on `aiub.work.<provider>`, then the frames on the caller's inbox.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from nats.aio.client import Client
from nats.aio.subscription import Subscription

from services.simulator.server import Simulator
from services.workers.http import BackendHttp
from services.workers.service import Worker
from shared import subjects
from shared.client import new_id
from shared.config import Config, ModelMappingsFile, ProviderSpec, RuntimeFile
from shared.messages import (
    ATTEMPT_WANTED,
    Accepted,
    Cancel,
    CancelReason,
    Chunk,
    Done,
    Error,
    Frame,
    Heartbeat,
    InferenceRequest,
    ModelList,
    RequestKind,
    Result,
    encode,
    frame_decoder,
    model_list_decoder,
)

PUBLIC_MODEL = "contract-model"  # the client's name; each backend serves it under its own name


@dataclass(frozen=True)
class Backend:
    id: str
    provider_type: str
    flavor: str  # simulator wire format
    backend_model: str
    api_key: str | None = None  # demanded by the simulator, given to the worker through env_var
    base_suffix: str = ""  # e.g. "/v1": how such a provider's base_url is usually written
    kinds: frozenset[str] = frozenset({"chat", "completion", "embedding"})

    @property
    def env_var(self) -> str | None:
        return f"AIUB_CONTRACT_{self.id.upper()}_KEY" if self.api_key else None

    def spec(self, base_url: str, **overrides: Any) -> ProviderSpec:
        return ProviderSpec.model_validate({
            "type": self.provider_type, "base_url": base_url + self.base_suffix,
            "requires_api_key": self.api_key is not None, "env_var": self.env_var,
            "models": {PUBLIC_MODEL: {"backend_model": self.backend_model}}, **overrides})


BACKENDS = [
    Backend("ollama", "ollama", "ollama", "llama3.1:8b"),
    Backend("ollama_cloud", "ollama_cloud", "ollama", "kimi-k2:1t", api_key="ollama-cloud-key"),
    Backend("vllm", "vllm", "openai", "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"),
    Backend("llama_cpp", "llama_cpp", "openai", "llama-3.1-8b-instruct-q4_k_m.gguf", base_suffix="/v1"),
    Backend("openai", "openai", "openai", "gpt-4o-mini", api_key="sk-contract-0123456789", base_suffix="/v1"),
    Backend("anthropic", "anthropic", "anthropic", "claude-sonnet-4-20250514", api_key="sk-ant-contract",
            base_suffix="/v1", kinds=frozenset({"chat"})),
]


@dataclass
class Reply:
    """Every frame of one attempt, after `Accepted`, heartbeats left out."""

    accepted: Accepted
    frames: list[Frame] = field(default_factory=list)

    @property
    def chunks(self) -> list[dict[str, Any]]:
        return [json.loads(bytes(raw)) for f in self.frames if isinstance(f, Chunk) for raw in f.payloads]

    @property
    def last(self) -> Frame:
        return self.frames[-1]

    def error(self) -> Error:
        assert isinstance(self.last, Error), f"expected an error, got {self.frames}"
        return self.last

    def result(self) -> dict[str, Any]:
        assert isinstance(self.last, Result), f"expected a result, got {self.frames}"
        return json.loads(bytes(self.last.data))  # type: ignore[no-any-return]

    def done(self) -> Done:
        assert isinstance(self.last, Done), f"expected a finished stream, got {self.frames}"
        return self.last


class Harness:
    def __init__(self, nc: Client, backend: Backend, sim: Simulator | None, provider: str, spec: ProviderSpec,
                 http: BackendHttp, runtime: RuntimeFile | None = None) -> None:
        self.nc = nc
        self.backend = backend
        self._sim = sim
        self.provider = provider
        config = Config(directory=Path("."), providers={provider: spec}, mappings=ModelMappingsFile(),
                        runtime=runtime or RuntimeFile())
        self.worker = Worker(nc, config, [provider], http)
        self._spec = spec

    @property
    def sim(self) -> Simulator:
        assert self._sim is not None, "this harness runs against a real backend"
        return self._sim

    async def start(self) -> None:
        await self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop(grace_s=0.0)

    async def open(self, kind: RequestKind, body: dict[str, Any], stream: bool = False,
                   deadline: float = 0.0, chunk_batches: bool = True) -> tuple[Accepted, Subscription]:
        attempt = new_id()
        inbox = subjects.inbox("contract", attempt)
        sub = await self.nc.subscribe(inbox)
        request = InferenceRequest(id=new_id(), attempt=attempt, kind=kind, model=PUBLIC_MODEL, body=body,
                                   stream=stream, deadline=deadline, chunk_batches=chunk_batches)
        order = {"request": msgspec.to_builtins(request), "reply_inbox": inbox, "provider": self.provider,
                 "backend_model": self._spec.backend_model(PUBLIC_MODEL)}
        answer = frame_decoder.decode((await self.nc.request(subjects.work(self.provider), encode(order),
                                                             timeout=5)).data)
        assert isinstance(answer, Accepted), answer
        first = frame_decoder.decode((await sub.next_msg(timeout=5)).data)
        assert isinstance(first, Accepted) and first.attempt == attempt
        return first, sub

    async def frames(self, accepted: Accepted, sub: Subscription, limit: int | None = None,
                     timeout_s: float = 10.0) -> Reply:
        reply = Reply(accepted)
        give_up = time.monotonic() + timeout_s
        while limit is None or len(reply.frames) < limit:
            msg = await sub.next_msg(timeout=max(0.01, give_up - time.monotonic()))
            if not msg.data and msg.reply:  # the worker asking whether we still wait: we do
                await msg.respond(ATTEMPT_WANTED)
                continue
            frame = frame_decoder.decode(msg.data)
            if isinstance(frame, Heartbeat):
                continue
            reply.frames.append(frame)
            if isinstance(frame, Done | Result | Error):
                await sub.unsubscribe()
                break
        return reply

    async def call(self, kind: RequestKind, body: dict[str, Any], stream: bool = False,
                   timeout_s: float = 10.0, chunk_batches: bool = True) -> Reply:
        accepted, sub = await self.open(kind, body, stream, chunk_batches=chunk_batches)
        return await self.frames(accepted, sub, timeout_s=timeout_s)

    async def cancel(self, accepted: Accepted, reason: CancelReason = "client_gone", stalled: bool = False) -> None:
        await self.nc.publish(accepted.control, encode(Cancel(attempt=accepted.attempt, reason=reason,
                                                              stalled=stalled)))

    async def models(self) -> ModelList:
        reply = await self.nc.request(subjects.models(self.provider), b"", timeout=5)
        return model_list_decoder.decode(reply.data)
