"""Active probes: `GET` the provider's health endpoint, `attempts` times before giving up.

Endpoints by type come from config: Ollama `/api/tags`, llama.cpp and vLLM `/v1/models`, and
`health_endpoint` overrides (e.g. llama.cpp's `/health`), always a path from the server's
root even when `base_url` ends in `/v1`. Cloud providers have none and are judged by
outcomes alone. Any answer below 500 means the server is up (a 401 from a probe without
credentials still proves it listens). Each attempt is bounded by `timeout_s` as a
whole, not per read, so a backend that trickles bytes cannot hang a probe.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from shared.config import ProviderSpec
from shared.http_library import httpx


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    latency_s: float
    reason: str = ""


def probe_url(spec: ProviderSpec) -> str | None:
    path = spec.probe_path
    if path is None or not spec.health.enabled:
        return None
    # `base_url` may name the /v1 API; a probe path is always from the server's root.
    root = spec.base_url.removesuffix("/v1")
    return root + path


async def _attempt(http: httpx.AsyncClient, url: str, timeout_s: float) -> ProbeResult:
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):
            response = await http.get(url, timeout=timeout_s)
    except TimeoutError:
        return ProbeResult(False, time.monotonic() - started, f"probe timed out after {timeout_s:g}s")
    except httpx.HTTPError as e:
        return ProbeResult(False, time.monotonic() - started, f"probe failed: {type(e).__name__}")
    took = time.monotonic() - started
    if response.status_code >= 500:
        return ProbeResult(False, took, f"probe answered HTTP {response.status_code}")
    return ProbeResult(True, took)


async def probe(http: httpx.AsyncClient, spec: ProviderSpec,
                sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> ProbeResult | None:
    """One probe cycle: the first passing attempt, or the last failure after `attempts` tries.
    None when the provider has no probe."""
    url = probe_url(spec)
    if url is None:
        return None
    settings = spec.health
    result = ProbeResult(False, 0.0, "not probed")
    for attempt in range(settings.attempts):
        result = await _attempt(http, url, settings.timeout_s)
        if result.ok:
            return result
        if attempt + 1 < settings.attempts:
            await sleep(min(1.0, settings.interval_s / 10))
    return ProbeResult(False, result.latency_s, f"{result.reason} ({settings.attempts} attempts)")
