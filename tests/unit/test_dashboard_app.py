"""The dashboard driven with Textual's pilot, without a broker: the model is filled by hand and
the tests read what the screen shows."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml
from textual import events
from textual.widgets import DataTable

from cli.dashboard.app import DashboardApp
from cli.dashboard.feed import Model
from cli.dashboard.scrape import summarize
from shared.messages import AttemptRecord, Outcome, ProviderState, RequestRecord
from tests.support.screen import SIZE, row, screen_text, until


def record(request_id: str, model: str, providers: tuple[str, ...], status: int = 200, **extra: Any) -> RequestRecord:
    attempts = tuple(AttemptRecord(attempt=f"{request_id}-{i}", provider=p, worker_id=f"w-{p}",
                                   status=status if i == len(providers) - 1 else 502,
                                   error=None if i == len(providers) - 1 else "upstream said 502", latency_s=0.02)
                     for i, p in enumerate(providers))
    fields: dict[str, Any] = {"client_request_id": None, "kind": "chat", "stream": False, "cache_hit": False,
                              "latency_s": 0.25, "ttft_s": 0.05, "at": time.time()}
    fields.update(extra)
    return RequestRecord(request_id=request_id, model=model, status=status, attempts=attempts, **fields)


def filled_model() -> Model:
    model = Model()
    now = time.time()
    model.health.states["ollama"] = ProviderState(provider="ollama", state="active", since=now - 30,
                                                  reason="probe passed", probe_latency_s=0.004)
    model.health.states["vllm"] = ProviderState(provider="vllm", state="degraded", since=now - 5,
                                                reason="latency 4x baseline")
    for i in range(20):
        model.stats.add(Outcome(provider="ollama", model="m", request_id=f"o{i}", attempt="a", worker_id="w",
                                kind="ok", latency_s=0.1, ttft_s=0.02), now)
        model.stats.add(Outcome(provider="vllm", model="m", request_id=f"v{i}", attempt="a", worker_id="w",
                                kind="ok", latency_s=2.5, ttft_s=0.9), now)
    model.requests.add_record(record("bus1", "llama3.1:8b", ("ollama",), client_request_id="req_abc123"))
    model.requests.add_record(record("bus2", "qwen-coder", ("vllm", "ollama")))
    model.requests.add_outcome(Outcome(provider="ollama", model="qwen-coder", request_id="bus2", attempt="bus2-1",
                                       worker_id="w-ollama", kind="ok", latency_s=0.2, ttft_s=0.03,
                                       prompt_tokens=9, completion_tokens=16))
    return model


async def test_providers_health_and_latency_side_by_side() -> None:
    app = DashboardApp(filled_model(), refresh_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: row(app, "ollama", "active", "probe passed"), 5, "the providers table")
        assert row(app, "vllm", "degraded", "latency 4x baseline")
        assert row(app, "ollama", "20", "50%", "0%", "20 ms", "20 ms", "100 ms", "100 ms")
        assert row(app, "vllm", "20", "50%", "0%", "900 ms", "900 ms", "2500 ms", "2500 ms")
        assert "health STALE" in screen_text(app)  # no heartbeat in this model


async def test_a_provider_going_down_shows_within_the_refresh_interval() -> None:
    model = filled_model()
    refresh_s = 0.3
    app = DashboardApp(model, refresh_s=refresh_s)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: row(app, "vllm", "degraded"), 5, "the first draw")
        model.health.states["vllm"] = ProviderState(provider="vllm", state="unavailable", since=time.time(),
                                                    reason="3 failures in 60 s", admit_fraction=0.0)
        took = await until(pilot, lambda: row(app, "vllm", "unavailable", "3 failures in 60 s"), 5, "vllm down")
        assert took <= refresh_s + 1.5  # generous: two cores, other tests running


async def test_inspector_lists_filters_and_opens_a_request() -> None:
    app = DashboardApp(filled_model(), refresh_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: row(app, "req_abc123", "llama3.1:8b", "ollama", "200"), 5, "the requests")
        assert row(app, "bus2", "qwen-coder", "vllm → ollama", "200", "2")
        await pilot.press("slash", *"provider:vllm")
        await until(pilot, lambda: not row(app, "req_abc123"), 5, "the filter to hide the ollama-only request")
        assert row(app, "bus2", "qwen-coder") and "1 shown of 2" in screen_text(app)
        await pilot.press("enter")  # leaves the filter for the list
        await pilot.press("enter")  # opens the highlighted request
        await until(pilot, lambda: row(app, "request bus2"), 5, "the request's details")
        assert row(app, "1", "vllm", "w-vllm", "502", "upstream said 502")
        assert row(app, "2", "ollama", "w-ollama", "200", "ok", "30 ms", "9/16")
        # The main screen keeps refreshing underneath the open request.
        app.model.health.states["vllm"] = ProviderState(provider="vllm", state="unavailable", reason="opened")
        refreshes = app.refreshes
        await until(pilot, lambda: app.refreshes >= refreshes + 2, 5, "two refreshes with the request open")
        await pilot.press("escape")
        await until(pilot, lambda: not row(app, "request bus2"), 5, "the request's details to close")
        assert row(app, "vllm", "unavailable", "opened")


async def test_metrics_line_shows_traffic_and_cache() -> None:
    model = filled_model()
    model.metrics = summarize({"http://x/metrics": 'router_load_balance_distribution_total{provider="ollama"} 30\n'
                                                  'router_load_balance_distribution_total{provider="vllm"} 10\n'
                                                  "cache_hits_total 1\ncache_misses_total 3\n",
                               "http://y/metrics": None})
    model.metrics_urls = ["http://x/metrics", "http://y/metrics"]
    app = DashboardApp(model, refresh_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: row(app, "metrics 1/2 endpoints up"), 5, "the metrics line")
        assert row(app, "cache hit 25% (1/4)")
        assert row(app, "traffic:", "ollama 30 (75%)", "vllm 10 (25%)")


async def test_q_quits() -> None:
    app = DashboardApp(Model(), refresh_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("q")
        await pilot.pause()
        assert app.return_code == 0 or not app.is_running


def _config_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "config"
    directory.mkdir()
    (directory / "providers.yaml").write_text(yaml.safe_dump(
        {"providers": {"ollama": {"type": "ollama", "base_url": "http://127.0.0.1:11434"}}}))
    (directory / "model-mappings.yaml").write_text(yaml.safe_dump(
        {"exact_matches": {"llama3.1:8b": {"provider": "ollama"}}}))
    return directory


async def test_config_view_refuses_an_invalid_config_and_saves_a_valid_one(tmp_path: Path) -> None:
    directory = _config_dir(tmp_path)
    original = (directory / "model-mappings.yaml").read_text()
    app = DashboardApp(Model(), refresh_s=0.1, config_dir=directory)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")
        await until(pilot, lambda: "Ctrl+S validates and saves" in screen_text(app), 5, "the config view")
        from textual.widgets import TextArea

        mappings = app.screen.query_one("#edit-mappings", TextArea)
        mappings.text = yaml.safe_dump({"exact_matches": {"llama3.1:8b": {"provider": "nosuch"}}})
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "NOT saved" in screen_text(app), 5, "the refusal")
        assert "'nosuch'" in screen_text(app)  # the error names the bad value
        assert (directory / "model-mappings.yaml").read_text() == original
        mappings.text = yaml.safe_dump({"exact_matches": {"llama3.2:3b": {"provider": "ollama"}}})
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "saved model-mappings.yaml" in screen_text(app), 5, "the save")
        assert "llama3.2:3b" in (directory / "model-mappings.yaml").read_text()
        await pilot.press("escape")
        await until(pilot, lambda: "Providers" in screen_text(app), 5, "the main screen")


async def test_a_filter_pasted_as_one_burst_of_keys_is_applied_without_another_key() -> None:
    """A terminal without bracketed paste sends the text as keys read in one go: the input's text
    changes many times before the first Changed is handled, and the last one must be drawn."""
    app = DashboardApp(filled_model(), refresh_s=60)  # no redraw from the timer: the filter must do it
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: row(app, "bus2", "qwen-coder"), 5, "the requests")
        await pilot.press("slash")
        for key in "model:llama*":
            app._filter.insert_text_at_cursor(key)  # no await: all of them before any Changed is handled
        await until(pilot, lambda: not row(app, "bus2", "qwen-coder"), 5, "the pasted filter to apply")
        assert row(app, "req_abc123", "llama3.1:8b") and "1 shown of 2" in screen_text(app)


async def test_a_bracketed_paste_into_the_filter_applies_at_once() -> None:
    app = DashboardApp(filled_model(), refresh_s=60)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: row(app, "bus2", "qwen-coder"), 5, "the requests")
        await pilot.press("slash")
        app._filter.post_message(events.Paste("provider:vllm"))
        await until(pilot, lambda: not row(app, "req_abc123"), 5, "the pasted filter to apply")
        assert row(app, "bus2", "qwen-coder")


async def test_a_cache_bypass_is_shown_as_bypass_in_the_list_and_the_detail() -> None:
    """`Cache-Control: no-cache` is answered `x-aiub-cache: bypass`: the dashboard says the same,
    not "miss" (a lookup that found nothing) nor "–"."""
    model = Model()
    model.requests.add_record(record("bypassed", "llama3.1:8b", ("ollama",), cache="bypass"))
    model.requests.add_record(record("missed", "qwen-coder", ("vllm",), cache="miss"))
    app = DashboardApp(model, refresh_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: row(app, "bypassed", "llama3.1:8b", "ollama", "200", "bypass"), 5, "the list")
        assert row(app, "missed", "qwen-coder", "vllm", "200", "miss")
        await pilot.press("down", "enter")  # newest first: the second row is the bypassed request
        await until(pilot, lambda: row(app, "request bypassed"), 5, "the request's details")
        assert row(app, "cache bypass (not looked up")
        assert "cache miss" not in screen_text(app)
        assert row(app, "1", "ollama", "w-ollama", "200")  # the attempt's own status


async def test_an_attempt_with_no_recorded_status_shows_a_dash_not_zero() -> None:
    model = Model()
    model.requests.add_record(record("old-gw", "llama3.1:8b", ("ollama",), status=0))
    app = DashboardApp(model, refresh_s=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: row(app, "old-gw", "llama3.1:8b"), 5, "the list")
        await pilot.press("enter")
        await until(pilot, lambda: row(app, "request old-gw"), 5, "the request's details")
        cells = next(line.split() for line in screen_text(app).splitlines() if "w-ollama" in line)
        assert cells[cells.index("w-ollama") + 1] == "–"  # the status column


async def test_a_request_drawn_before_the_table_is_idle_is_not_cut_to_the_header_width() -> None:
    """Textual widens a column for new rows when the table is next idle, and a row drawn before
    that stayed cut in its render cache until the table was filled again: under load the newest
    request showed as "req_das" until another came."""
    model = Model()
    app = DashboardApp(model, refresh_s=60)  # only the refresh below
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        model.requests.add_record(record("bus9", "a-rather-long-model-name", ("ollama",),
                                         client_request_id="req_with_a_long_id"))
        app.refresh_view()
        table = app.query_one("#requests", DataTable)
        for y in range(table.size.height):  # drawn now, before the table's next idle
            table.render_line(y)
        await pilot.pause()
        assert row(app, "req_with_a_long_id", "a-rather-long-model-name", "ollama", "200"), screen_text(app)


async def test_a_model_name_that_looks_like_markup_is_shown_as_written() -> None:
    """What a client sends is text, not Rich markup: "[/x]" crashed the dashboard's redraw."""
    model = Model()
    app = DashboardApp(model, refresh_s=60)
    async with app.run_test(size=SIZE) as pilot:
        model.requests.add_record(record("bus7", "[/x][bold]m", ("ollama",), client_request_id="req_[b]"))
        app.refresh_view()
        await until(pilot, lambda: row(app, "req_[b]", "[/x][bold]m", "ollama"), 5, "the request, as sent")
        app.query_one("#requests", DataTable).focus()
        await pilot.press("enter")
        await until(pilot, lambda: row(app, "model [/x][bold]m"), 5, "the request's details, as sent")
