"""What the dashboard's tables say: model → rows of Rich text. No I/O, no Textual, clock passed in."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence

from rich.text import Text

from cli.dashboard.inspector import Entry, display_id, providers_of
from cli.dashboard.scrape import MetricsSummary
from cli.dashboard.stats import ProviderStats
from cli.durations import age, duration
from shared.messages import ProviderState, RequestRecord

STATE_STYLE = {"active": "green", "degraded": "yellow", "cooldown": "cyan", "unavailable": "red"}

Row = tuple[str, list[Text | str]]


def cell_widths(rows: Iterable[Sequence[Text | str]]) -> list[int]:
    """Each column's widest cell, in terminal cells, as a DataTable draws it (a str cell is markup)."""
    widths: list[int] = []
    for cells in rows:
        for i, cell in enumerate(cells):
            width = (Text.from_markup(cell) if isinstance(cell, str) else cell).cell_len
            if i == len(widths):
                widths.append(width)
            else:
                widths[i] = max(widths[i], width)
    return widths


def state_text(state: str) -> Text:
    style = STATE_STYLE.get(state, "magenta")
    return Text.assemble(("● ", style), (state, f"bold {style}"))


def provider_rows(states: Mapping[str, ProviderState], now: float) -> list[Row]:
    rows: list[Row] = []
    for name, s in sorted(states.items()):
        state = state_text(s.state)
        if s.state == "unavailable" and s.open_until is not None and s.open_until > now:
            state.append(f" {s.open_until - now:.0f}s left", "dim")
        rows.append((name, [name, state, age(now - s.since) if s.since else "–", f"{s.admit_fraction:g}",
                            duration(s.probe_latency_s), Text(s.reason)]))  # a backend's words, not markup
    return rows


def latency_rows(summary: Mapping[str, ProviderStats]) -> list[Row]:
    """One row per provider; the slowest p95 of each column is red, so the slow provider stands out."""
    slowest = {column: max((getattr(s, column) or 0.0 for s in summary.values()), default=0.0)
               for column in ("ttft_p95", "total_p95")}
    rows: list[Row] = []
    for name, s in summary.items():
        def cell(column: str, stats: ProviderStats = s) -> Text:
            value = getattr(stats, column)
            red = len(summary) > 1 and column in slowest and value is not None and value == slowest[column]
            return Text(duration(value), "bold red" if red else "")

        failures = Text(f"{s.failure_rate:.0%}", "red" if s.failures else "")
        rows.append((name, [name, str(s.attempts), f"{s.share:.0%}", failures, cell("ttft_p50"), cell("ttft_p95"),
                            cell("total_p50"), cell("total_p95")]))
    return rows


def status_text(status: int) -> Text:
    if status <= 0:  # no status was recorded (the attempt was cut short, or an older gateway)
        return Text("–", "dim")
    return Text(str(status), "green" if status < 400 else "yellow" if status < 500 else "bold red")


def cache_state(record: RequestRecord) -> str:
    """What the client was told in `x-aiub-cache`: hit, miss or bypass; "" when the gateway has no
    cache (or predates `RequestRecord.cache`: then only a hit is known)."""
    return record.cache or ("hit" if record.cache_hit else "")


CACHE_DETAIL = {
    "hit": "cache hit (answered from the cache)",
    "miss": "cache miss (looked up, not found)",
    "bypass": "cache bypass (not looked up: the request asked for a fresh answer, or its model is not cached)",
    "": "cache – (no cache, or the gateway did not say)",
}


def request_cells(record: RequestRecord) -> list[Text | str]:
    providers = providers_of(record)
    cache = cache_state(record)
    served_by = "cache" if cache == "hit" else " → ".join(providers) or "–"
    # Text, not str: a DataTable reads a str cell as Rich markup, and "[/x]" from a client broke the redraw.
    return [time.strftime("%H:%M:%S", time.localtime(record.at)) if record.at else "–", Text(display_id(record)),
            Text(record.model), Text(served_by), status_text(record.status), cache or "–",
            str(len(record.attempts)), duration(record.ttft_s), duration(record.latency_s)]


def request_summary(entry: Entry) -> str:
    r = entry.record
    lines = [
        f"request {display_id(r)}" + (f"   (bus id {r.request_id})" if r.client_request_id else ""),
        f"model {r.model}   kind {r.kind}{' (stream)' if r.stream else ''}   status {r.status}",
        CACHE_DETAIL.get(cache_state(r), f"cache {cache_state(r)}"),
        f"latency {duration(r.latency_s)}   TTFT {duration(r.ttft_s)}   attempts {len(r.attempts)}   "
        f"at {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(r.at)) if r.at else '–'}",
    ]
    return "\n".join(lines)


def attempt_rows(entry: Entry) -> list[Row]:
    """The gateway's view of each attempt beside its worker's outcome (when one arrived)."""
    rows: list[Row] = []
    for number, a in enumerate(entry.record.attempts, 1):
        outcome = entry.outcome_for(a.attempt)
        tokens = f"{outcome.prompt_tokens}/{outcome.completion_tokens}" if outcome else "–"
        rows.append((a.attempt, [str(number), Text(a.provider or "–"), Text(a.worker_id or "–"), status_text(a.status),
                                 outcome.kind if outcome else "–", Text(a.error or ""), duration(a.latency_s),
                                 duration(outcome.ttft_s) if outcome else "–", tokens]))
    return rows


def metrics_text(metrics: MetricsSummary | None, configured: bool) -> Text:
    if not configured:
        return Text("metrics: no endpoints (pass --metrics URL..., or run the stack with `aiub up`)", "dim")
    if metrics is None:
        return Text("metrics: scraping…", "dim")
    up = sum(metrics.endpoints.values())
    text = Text(f"metrics {up}/{len(metrics.endpoints)} endpoints up", "red" if up < len(metrics.endpoints) else "")
    for label, value, unit in (("active", metrics.active_connections, ""), ("queued", metrics.queued, ""),
                               ("throughput", metrics.throughput, " tok/s")):
        if value is not None:
            text.append(f"   {label} {value:g}{unit}")
    if metrics.cache_hit_rate is not None:
        text.append(f"   cache hit {metrics.cache_hit_rate:.0%} ({metrics.cache_hits:g}/"
                    f"{(metrics.cache_hits or 0) + (metrics.cache_misses or 0):g})")
    traffic = metrics.distribution or metrics.requests
    total = sum(traffic.values())
    if total:
        text.append("\ntraffic: " + "  ".join(f"{p} {v:g} ({v / total:.0%})" for p, v in sorted(traffic.items())))
    if metrics.errors:
        text.append("   errors: " + "  ".join(f"{p} {v:g}" for p, v in sorted(metrics.errors.items())))
    if metrics.fallbacks:
        text.append("   fallbacks from: " + "  ".join(f"{p} {v:g}" for p, v in sorted(metrics.fallbacks.items())))
    down = [p for p, v in sorted(metrics.availability.items()) if v == 0]
    if down:
        text.append("\nunavailable (provider_availability 0): " + ", ".join(down), "red")
    return text
