"""`aiub dashboard [--nats URL] [--metrics URL ...]`: run the dashboard against any running stack.

With no `--nats`, it finds the stack `aiub up` started by the rule of cli/stack_dir.py
(--state-dir, $AIUB_STATE_DIR, ./.aiub, the state dir `aiub up` recorded) and reads its
`<state-dir>/stack.json` (which also lists every service's `/metrics`), else takes `$NATS_URL`;
with none of these it says "no stack found" and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cli import stack_dir
from shared import arguments
from shared.config import Environment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--nats", default=None,
                        help="NATS URL (default: the NATS of the stack found by --state-dir's rule, else $NATS_URL)")
    parser.add_argument("--metrics", nargs="*", default=None, metavar="URL",
                        help="/metrics endpoints to scrape, e.g. http://127.0.0.1:4000/metrics or host:port "
                             "(default: every service listed in <state-dir>/stack.json)")
    parser.add_argument("--state-dir", default=None,
                        help="where `aiub up` keeps its state (default: $AIUB_STATE_DIR, else ./.aiub when it "
                             "holds a stack.json, else the state dir the running `aiub up` recorded)")
    parser.add_argument("--config", default=None,
                        help="config directory the `c` view edits (default: $AIUB_CONFIG, else the shipped config/)")
    parser.add_argument("--refresh", type=arguments.positive_seconds, default=1.0,
                        help="seconds between redraws (default: 1)")
    parser.add_argument("--window", type=arguments.positive_seconds, default=300.0,
                        help="seconds of outcomes the latency table covers (default: 300)")
    parser.add_argument("--web", action="store_true",
                        help="serve the dashboard as a web page (textual-serve), behind the gateway's master key")
    parser.add_argument("--port", type=arguments.port, default=8765, help="--web: the port (default: 8765)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="--web: the bind address (default: 127.0.0.1; another needs a master key)")


def metrics_url(value: str) -> str:
    """`host:port` → `http://host:port/metrics`; a full URL is kept."""
    url = value if "://" in value else f"http://{value}"
    return url if "/" in url.partition("://")[2] else f"{url}/metrics"


def _stack_file(state_dir: Path | None) -> dict[str, Any]:
    if state_dir is None:
        return {}
    try:
        found = json.loads((state_dir / "stack.json").read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def resolve(nats: str | None, metrics: list[str] | None, state_dir: Path | None,
            nats_env: str | None) -> tuple[str | None, list[str]]:
    """The NATS URL and the `/metrics` URLs to use, from the flags, the stack.json of the stack
    found (`state_dir`, None: none) and $NATS_URL (`nats_env`); no URL when none names one."""
    stack = _stack_file(state_dir)
    url = nats or stack.get("nats_url") or nats_env or None
    if metrics is None:
        listed = stack.get("metrics")
        metrics = [u for u in listed.values() if isinstance(u, str)] if isinstance(listed, dict) else []
    return None if url is None else str(url), [metrics_url(m) for m in metrics]


def main(args: argparse.Namespace, environ: Mapping[str, str], environment: Environment) -> int:
    from cli.dashboard.app import DashboardApp
    from cli.dashboard.feed import Feed, Model
    from cli.dashboard.stats import RollingStats
    from cli.dashboard.terminal import driver_for
    from shared import logs
    from shared.config import default_config_dir

    located = stack_dir.locate(args.state_dir, environment.state_dir,
                               stack_dir.pointer_file(environment.xdg_state_home, environment.home))
    state_dir = located.state_dir
    nats_url, metrics_urls = resolve(args.nats, args.metrics, state_dir, environment.nats_url)
    if nats_url is None:
        print(stack_dir.no_stack_found("aiub dashboard", located), file=sys.stderr)
        return 1
    # Log lines on stderr would scribble over the screen.
    log_stream = (state_dir / "dashboard.log").open("a") if state_dir is not None and state_dir.is_dir() \
        else open(os.devnull, "w")
    logs.configure("dashboard", "WARNING", stream=log_stream)
    model = Model(stats=RollingStats(window_s=args.window), metrics_urls=metrics_urls)
    config_dir = Path(args.config) if args.config else default_config_dir(environ)
    if getattr(args, "web", False):
        return _serve_web(args, environ, nats_url, metrics_urls, state_dir, config_dir)
    # Drawn on the terminal even when stderr is redirected (Textual's own driver draws on stderr).
    # Under `--web`, textual-serve names its own driver in TEXTUAL_DRIVER: the terminal is not ours to draw on.
    app = DashboardApp(model, Feed(model, nats_url), config_dir=config_dir, refresh_s=args.refresh,
                       driver_class=None if environ.get("TEXTUAL_DRIVER") else driver_for(), environ=environ)
    try:
        app.run()
    finally:
        log_stream.close()
    return 0


def _serve_web(args: argparse.Namespace, environ: Mapping[str, str], nats_url: str, metrics_urls: list[str],
               state_dir: Path | None, config_dir: Path) -> int:
    """`--web`: the master key comes from the config (like the gateway's); a config that does not
    load refuses to start rather than serve without a key."""
    from cli.dashboard import web
    from shared.config import ConfigError, load_config

    try:
        master_key = load_config(config_dir, environ).runtime.auth.master_key()
    except ConfigError as e:
        print(f"aiub dashboard --web: the config does not load, so the master key is unknown: {e}", file=sys.stderr)
        return 2
    dashboard = web.command(nats_url, metrics_urls, None if state_dir is None else str(state_dir), str(config_dir),
                            args.refresh, args.window)
    return web.serve(dashboard, args.host, args.port, master_key)
