"""The dashboard's live inputs: provider states (KV watch), outcomes and request records (core
subscriptions) from NATS, and the services' `/metrics` endpoints over HTTP.

Everything lands in one `Model` that the screen redraws from on its refresh timer; callbacks
only append to bounded stores, so a burst of events never blocks the UI. The dashboard is a
reader: it publishes nothing. The connection retries until it succeeds (the stack may start
after the dashboard) and its state is shown in the header.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg

from cli.dashboard.inspector import RequestLog
from cli.dashboard.scrape import MetricsSummary, summarize
from cli.dashboard.stats import RollingStats
from shared import bus, lifecycle, subjects
from shared.health_view import HealthView
from shared.messages import outcome_decoder, record_decoder
from shared.nats_library import nats, servers


@dataclass
class Model:
    health: HealthView = field(default_factory=HealthView)
    stats: RollingStats = field(default_factory=RollingStats)
    requests: RequestLog = field(default_factory=RequestLog)
    metrics_urls: list[str] = field(default_factory=list)  # the `/metrics` endpoints scraped
    metrics: MetricsSummary | None = None
    bus: str = "not connected"
    unreadable: int = 0  # events that did not decode: a version mismatch shows here


class Feed:
    def __init__(self, model: Model, nats_url: str, clock: Callable[[], float] = time.time) -> None:
        self.model = model
        self.nats_url = nats_url
        self._clock = clock
        self._nc: Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None
        self._scraping = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._connect())

    async def stop(self) -> None:
        await lifecycle.cancel_and_wait(self._task)
        await self.model.health.stop()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()
        if self._http is not None:
            await self._http.aclose()

    async def _connect(self) -> None:
        model = self.model

        async def disconnected() -> None:
            model.bus = f"disconnected from {self.nats_url}, reconnecting"

        async def reconnected() -> None:
            model.bus = f"connected to {self.nats_url}"
            await model.health.rewatch()

        while True:
            try:
                self._nc = await nats.connect(servers=servers(self.nats_url),
                                              inbox_prefix=bus.inbox_prefix_for(self.nats_url), connect_timeout=2,
                                              allow_reconnect=True, max_reconnect_attempts=-1,
                                              reconnect_time_wait=1, disconnected_cb=disconnected,
                                              reconnected_cb=reconnected)
                break
            except Exception as e:  # any failure to connect is shown, then retried
                model.bus = f"cannot reach {self.nats_url} ({type(e).__name__}), retrying"
                await asyncio.sleep(2.0)
        await self._nc.subscribe(subjects.OUTCOME_ALL, cb=self._on_outcome)
        await self._nc.subscribe(subjects.REQUEST_EVENTS, cb=self._on_record)
        model.bus = f"connected to {self.nats_url}"
        await model.health.start(self._nc.jetstream())

    async def _on_outcome(self, msg: Msg) -> None:
        try:
            outcome = outcome_decoder.decode(msg.data)
        except (msgspec.ValidationError, msgspec.DecodeError):
            self.model.unreadable += 1
            return
        self.model.stats.add(outcome, self._clock())
        self.model.requests.add_outcome(outcome)

    async def _on_record(self, msg: Msg) -> None:
        try:
            self.model.requests.add_record(record_decoder.decode(msg.data))
        except (msgspec.ValidationError, msgspec.DecodeError):
            self.model.unreadable += 1

    async def scrape(self) -> None:
        """Fetch every `/metrics` endpoint at once; a refresh that finds one still running skips it."""
        urls = list(self.model.metrics_urls)
        if not urls or self._scraping:
            return
        self._scraping = True
        try:
            if self._http is None:
                self._http = httpx.AsyncClient(timeout=2.0, trust_env=False)
            texts = await asyncio.gather(*(self._fetch(url) for url in urls))
            self.model.metrics = summarize(dict(zip(urls, texts, strict=True)))
        finally:
            self._scraping = False

    async def _fetch(self, url: str) -> str | None:
        assert self._http is not None
        try:
            response = await self._http.get(url)
            return response.text if response.status_code == 200 else None
        except httpx.HTTPError:
            return None
