"""`aiub dashboard`: a live Textual view of a running stack.

At the top, each provider's health state in colour (from the health KV bucket); under it,
latency side by side per provider (TTFT and total, p50 and p95, from the workers' outcome
events over a rolling window) with each provider's share of the traffic; then the spec's
metrics summed over the `/metrics` endpoints; below, the request inspector (the gateway's
request records, newest first, filterable; Enter opens one with all its attempts).

The screen is redrawn from the model every `refresh_s` (and on `r`): events only update the
model, so a burst of traffic costs one redraw per interval.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from rich.text import Text
from textual.app import App, ComposeResult
from textual.driver import Driver
from textual.widgets import DataTable, Footer, Header, Input, Static

from cli.dashboard import view
from cli.dashboard.feed import Feed, Model
from cli.dashboard.inspector import Query, parse_query
from cli.dashboard.screens import ConfigScreen, RequestScreen


class DashboardApp(App[None]):
    TITLE = "aiub dashboard"
    CSS = """
    #providers, #latency { height: auto; max-height: 14; border: round $primary; }
    #metrics { height: auto; padding: 0 1; }
    #filter { height: 3; }
    #requests { height: 1fr; min-height: 5; border: round $primary; }
    """
    BINDINGS = [
        ("q", "quit", "Quit"),
        ("r", "refresh", "Refresh"),
        ("c", "config", "Config"),
        ("slash", "filter", "Filter"),
        ("escape", "leave_filter", "Back to the list"),
    ]

    def __init__(self, model: Model, feed: Feed | None = None, config_dir: Path | None = None,
                 refresh_s: float = 1.0, clock: Callable[[], float] = time.time,
                 driver_class: type[Driver] | None = None, environ: Mapping[str, str] | None = None) -> None:
        """`environ`: what a config saved from the config view is validated against (`${VAR}`)."""
        super().__init__(driver_class=driver_class)
        self.environ = environ if environ is not None else {}
        self.model = model
        self.feed = feed
        self.config_dir = config_dir
        self.refresh_s = refresh_s
        self._clock = clock
        self._query = parse_query("")
        self._shown_requests: tuple[int, Query] | None = None  # (records received, query) last drawn
        self.refreshes = 0

    def compose(self) -> ComposeResult:
        # Kept as attributes: `query_one` looks in the current screen, which is not this one while
        # a request or the config is open, and the refresh timer keeps running then.
        self._providers: DataTable[Text | str] = DataTable(id="providers", cursor_type="none")
        self._latency: DataTable[Text | str] = DataTable(id="latency", cursor_type="none")
        self._metrics = Static(id="metrics")
        self._filter = Input(placeholder="filter requests: model:NAME provider:NAME or any text "
                             "(/ to focus, Esc to leave)", id="filter")
        self._requests: DataTable[Text | str] = DataTable(id="requests", cursor_type="row")
        yield Header()
        yield self._providers
        yield self._latency
        yield self._metrics
        yield self._filter
        yield self._requests
        yield Footer()

    def on_mount(self) -> None:
        providers = self._providers
        providers.border_title = "Providers (health service)"
        providers.add_columns("provider", "state", "since", "admit", "probe", "reason")
        self._latency.add_columns("provider", "attempts", "share", "fail%", "TTFT p50", "TTFT p95", "total p50",
                                  "total p95")
        requests = self._requests
        requests.add_columns("time", "request", "model", "provider", "status", "cache", "attempts", "TTFT",
                             "total")
        if self.feed is not None:
            self.feed.start()
        self.set_interval(self.refresh_s, self.refresh_view)
        self.refresh_view()
        requests.focus()

    async def on_unmount(self) -> None:
        if self.feed is not None:
            await self.feed.stop()

    def refresh_view(self) -> None:
        if not self._requests.is_attached:  # shutting down
            return
        self.refreshes += 1
        now = self._clock()
        model = self.model
        if self.feed is not None:
            self.run_worker(self.feed.scrape(), group="scrape", exclusive=False)
        health = "health STALE (no heartbeat from the health service)" if model.health.stale else "health live"
        self.sub_title = f"{model.bus} · {health} · refreshed {time.strftime('%H:%M:%S', time.localtime(now))}"
        self._fill(self._providers, view.provider_rows(model.health.states, now))
        summary = model.stats.summary(now)
        window = f"{model.stats.window_s / 60:g} min" if model.stats.window_s >= 60 else f"{model.stats.window_s:g} s"
        latency = self._latency
        latency.border_title = f"Latency and traffic, last {window}"
        self._fill(latency, view.latency_rows(summary))
        self._metrics.update(view.metrics_text(model.metrics, bool(model.metrics_urls)))
        self._refresh_requests()

    def _fill(self, table: DataTable[Text | str], rows: list[tuple[str, list[Text | str]]]) -> None:
        table.clear()
        for key, cells in rows:
            table.add_row(*cells, key=key)
        # Textual widens a column for new rows only when the table is next idle, and a row drawn
        # before that stays in its render cache, cut to the old width, until the table is cleared
        # again: under load the newest request stayed "req_das" until the next one came. Widen
        # the columns now, as Textual would (never narrower), so the first draw is the right one.
        widths = view.cell_widths(cells for _, cells in rows)  # none when there are no rows
        for column, width in zip(table.ordered_columns, widths, strict=False):
            column.content_width = max(column.content_width, width)

    def _refresh_requests(self, force: bool = False) -> None:
        # Keyed on the query drawn, not on the input's text: keys read in one go (a paste in a
        # terminal without bracketed paste) change the text several times before the first
        # Changed is handled, and a key on the text would skip every later, longer query.
        shown = (self.model.requests.received, self._query)
        if shown == self._shown_requests and not force:
            return
        self._shown_requests = shown
        table = self._requests
        selected = None
        if table.row_count:
            selected = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        records = self.model.requests.newest(self._query, limit=500)
        table.border_title = f"Requests ({len(records)} shown of {len(self.model.requests)})"
        self._fill(table, [(r.request_id, view.request_cells(r)) for r in records])
        keys = [r.request_id for r in records]
        if selected in keys:
            table.move_cursor(row=keys.index(selected))

    def on_input_changed(self, event: Input.Changed) -> None:
        self._query = parse_query(event.value)
        self._refresh_requests()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self._requests.focus()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id != "requests" or event.row_key.value is None:
            return
        entry = self.model.requests.get(event.row_key.value)
        if entry is not None:
            self.push_screen(RequestScreen(entry))

    def action_refresh(self) -> None:
        self._shown_requests = None
        self.refresh_view()

    def action_filter(self) -> None:
        self._filter.focus()

    def action_leave_filter(self) -> None:
        self._requests.focus()

    def action_config(self) -> None:
        if self.config_dir is None:
            self.notify("no config directory: start with --config DIR", severity="warning")
            return
        self.push_screen(ConfigScreen(self.config_dir, self.feed.nats_url if self.feed is not None else None,
                                      self.environ))
