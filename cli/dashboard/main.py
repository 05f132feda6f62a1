"""`aiub dashboard [--nats URL] [--metrics URL ...]`: run the dashboard against any running stack.

With no `--nats`, it finds the stack `aiub up` started in this directory through
`<state-dir>/stack.json` (which also lists every service's `/metrics`), else `$NATS_URL`,
else nats://127.0.0.1:4222.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shared.bus import DEFAULT_URL


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nats", default=None,
                        help="NATS URL (default: <state-dir>/stack.json, else $NATS_URL, else " + DEFAULT_URL + ")")
    parser.add_argument("--metrics", nargs="*", default=None, metavar="URL",
                        help="/metrics endpoints to scrape, e.g. http://127.0.0.1:4000/metrics or host:port "
                             "(default: every service listed in <state-dir>/stack.json)")
    parser.add_argument("--state-dir", default=".aiub", help="where `aiub up` keeps its state (default: .aiub)")
    parser.add_argument("--config", default=None,
                        help="config directory the `c` view edits (default: $AIUB_CONFIG, else the shipped config/)")
    parser.add_argument("--refresh", type=float, default=1.0, help="seconds between redraws (default: 1)")
    parser.add_argument("--window", type=float, default=300.0,
                        help="seconds of outcomes the latency table covers (default: 300)")


def metrics_url(value: str) -> str:
    """`host:port` → `http://host:port/metrics`; a full URL is kept."""
    url = value if "://" in value else f"http://{value}"
    return url if "/" in url.partition("://")[2] else f"{url}/metrics"


def _stack_file(state_dir: Path) -> dict[str, Any]:
    try:
        found = json.loads((state_dir / "stack.json").read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def resolve(nats: str | None, metrics: list[str] | None, state_dir: Path,
            environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """The NATS URL and the `/metrics` URLs to use, from the flags, stack.json and the environment."""
    stack = _stack_file(state_dir)
    url = nats or stack.get("nats_url") or environ.get("NATS_URL") or DEFAULT_URL
    if metrics is None:
        listed = stack.get("metrics")
        metrics = [u for u in listed.values() if isinstance(u, str)] if isinstance(listed, dict) else []
    return str(url), [metrics_url(m) for m in metrics]


def main(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from cli.dashboard.app import DashboardApp
    from cli.dashboard.feed import Feed, Model
    from cli.dashboard.stats import RollingStats
    from cli.dashboard.terminal import driver_for
    from shared import logs
    from shared.config import default_config_dir

    state_dir = Path(args.state_dir)
    # Log lines on stderr would scribble over the screen.
    log_stream = (state_dir / "dashboard.log").open("a") if state_dir.is_dir() else open(os.devnull, "w")
    logs.configure("dashboard", "WARNING", stream=log_stream)
    nats_url, metrics_urls = resolve(args.nats, args.metrics, state_dir, environ)
    model = Model(stats=RollingStats(window_s=args.window), metrics_urls=metrics_urls)
    config_dir = Path(args.config) if args.config else default_config_dir(environ)
    # Drawn on the terminal even when stderr is redirected (Textual's own driver draws on stderr).
    app = DashboardApp(model, Feed(model, nats_url), config_dir=config_dir, refresh_s=args.refresh,
                       driver_class=driver_for())
    try:
        app.run()
    finally:
        log_stream.close()
    return 0
