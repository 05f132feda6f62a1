"""The two roles of a multi-host lab, under `aiub up`'s supervision (cli/up/stack.py).

`aiub hub --lab DIR --node NAME`: this host's node of the lab's NATS cluster (kept running by
`BusKeeper`, listening for clients and routes), and the gateway, router and health service,
each connecting as its own NATS user to every hub node, this one first.

`aiub join --lab DIR --provider KEY ...`: only the workers of the providers whose backends run on
this host, connecting outbound to the hub nodes as the `worker` user. Nothing listens here: the
backend stays on loopback, no metrics port is opened, and the health service judges the provider
by its workers' outcomes and trial requests (its active probe needs the backend reachable from
the hub: give such providers `health: {enabled: false}`, docs/multi-host.md).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import threading
from pathlib import Path

import msgspec

from cli.up.bus_keeper import BusKeeper, BusLost
from cli.up.scaling import ScaleError, parse_scale, replica_names
from cli.up.stack import Child, _aiub, _assign_metrics_ports, _stop_all, _supervise, _wait_ready
from shared import arguments
from shared.config import Config, Environment
from shared.embedded_nats import EmbeddedNats, wait_for_port
from shared.lab import BUS_SECRET, Lab, LabError, lab_decoder, node_config, secrets_decoder, spread, urls

ROOT = Path(__file__).resolve().parents[2]
AUTH_CONF = ROOT / "deploy" / "nats" / "auth.conf"
HUB_SERVICES = ("gateway", "router", "health")


def add_hub_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lab", required=True, help="the lab directory `aiub creds init` wrote")
    parser.add_argument("--node", required=True, help="this host's hub node name (in lab.json)")
    parser.add_argument("--services", default=",".join(HUB_SERVICES),
                        help="which services this hub host runs besides its NATS node (default: all three; "
                             "'' for a NATS-only node)")
    parser.add_argument("--host", default="0.0.0.0", help="gateway bind address")
    parser.add_argument("--port", type=arguments.port, default=4000, help="gateway port")
    parser.add_argument("--state-dir", default=".aiub-hub", help="the NATS node's JetStream store, and logs")
    parser.add_argument("--scale", default="", metavar="SERVICE=N,...", help="router=2 or health=2")
    parser.add_argument("--insecure-no-auth", action="store_true",
                        help="let the gateway serve without a master key (a test lab only)")


def add_join_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lab", required=True, help="the GPU host's copy of the lab directory (DIR/gpu)")
    parser.add_argument("--provider", nargs="+", required=True, metavar="KEY",
                        help="the providers whose backends run on this host")
    parser.add_argument("--prefer", default=None,
                        help="the hub node to connect to first (default: spread by this host's name)")
    parser.add_argument("--state-dir", default=".aiub-gpu", help="logs")
    parser.add_argument("--scale", default="", metavar="worker=N", help="worker replicas per provider")


def load_lab(directory: str) -> tuple[Lab, dict[str, str], Path]:
    lab_dir = Path(directory).resolve()
    try:
        lab = lab_decoder.decode((lab_dir / "lab.json").read_bytes())
        passwords = secrets_decoder.decode((lab_dir / "secrets.json").read_bytes())
    except OSError as e:
        raise LabError(f"{lab_dir} is not a lab directory ({e.strerror}: {e.filename}); make one with "
                       f"`aiub creds init`") from None
    except msgspec.ValidationError as e:
        raise LabError(f"{lab_dir}: {e}") from None
    return lab, passwords, lab_dir


def _env(lab: Lab, lab_dir: Path, passwords: dict[str, str], config: Config) -> dict[str, str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if lab.tls:  # nats-py's default TLS context (tls:// URLs) and httpx both honour it
        env["SSL_CERT_FILE"] = str(lab_dir / "ca-bundle.pem")
    if BUS_SECRET in passwords:
        env[config.runtime.auth.bus_secret_env] = passwords[BUS_SECRET]
    return env


def _password(passwords: dict[str, str], user: str, lab_dir: Path) -> str:
    if user not in passwords:
        raise LabError(f"{lab_dir / 'secrets.json'} has no password for the {user!r} user: a GPU host's copy "
                       f"(DIR/gpu) holds the worker's only")
    return passwords[user]


def run_hub(config: Config, args: argparse.Namespace, environment: Environment) -> int:
    try:
        lab, passwords, lab_dir = load_lab(args.lab)
        lab.hub(args.node)
        services = [s for s in args.services.split(",") if s]
        if unknown := [s for s in services if s not in HUB_SERVICES]:
            raise LabError(f"--services: unknown {', '.join(unknown)} (choose from {', '.join(HUB_SERVICES)})")
        scale = parse_scale(args.scale, [])
        certs = {"cert": str(lab_dir / args.node / "server.pem"), "key": str(lab_dir / args.node / "server-key.pem"),
                 "ca": str(lab_dir / "ca.pem")} if lab.tls else {}
        extra = node_config(lab, args.node, passwords, AUTH_CONF.read_text(), **certs)
        env = _env(lab, lab_dir, passwords, config)
        service_urls = {s: urls(lab, s, _password(passwords, s, lab_dir), preferred=args.node)
                        for s in (*services, "monitor")}
    except (LabError, ScaleError) as e:
        print(f"aiub hub: {e}", file=sys.stderr)
        return 2
    state_dir = Path(args.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    stop = _stop_on_signals()
    node = EmbeddedNats(state_dir / "nats", port=lab.client_port, listen_host="0.0.0.0", extra_config=extra)
    children, gateway = _hub_children(config, args, services, scale, env, service_urls, state_dir)
    metrics = _assign_metrics_ports(children, gateway, args.port) if gateway else {}
    stack_file = state_dir / "stack.json"
    stack_file.touch(mode=0o600)  # the monitor user's password: `aiub status --state-dir` reads it
    stack_file.write_text(json.dumps({"nats_url": service_urls["monitor"], "metrics": metrics,
                                      "gateway": f"http://{args.host}:{args.port}" if gateway else None}))
    try:
        node.start(deadline_s=30.0)
        for child in children:
            child.start()
        if gateway is not None:
            wait_for_port("127.0.0.1" if args.host == "0.0.0.0" else args.host, args.port, 60.0, gateway.process)
            _wait_ready(f"http://127.0.0.1:{args.port}/ready", 60.0)
        print(f"aiub hub {args.node} is up: NATS node on :{lab.client_port} (cluster of {len(lab.hubs)}, "
              f"TLS {'on' if lab.tls else 'off'}), services: {', '.join(services) or 'none'}", flush=True)
        for child in children:
            print(f"  {child.name:<12} pid {child.process.pid if child.process else '-'}  log {child.log_path}")
        _supervise(children, stop, BusKeeper(node))
    except BusLost as e:
        print(f"aiub hub: this host's NATS node is gone and could not be brought back: {e}", file=sys.stderr)
        return 1
    except (RuntimeError, TimeoutError) as e:
        print(f"aiub hub failed: {e}; see the logs in {state_dir}", file=sys.stderr)
        return 1
    finally:
        _stop_all(children)
        node.stop()
        stack_file.unlink(missing_ok=True)
    return 0


def _hub_children(config: Config, args: argparse.Namespace, services: list[str], scale: dict[str, int],
                  env: dict[str, str], service_urls: dict[str, str],
                  state_dir: Path) -> tuple[list[Child], Child | None]:
    """The hub's service processes (each replica its own), and which of them is the gateway."""
    common = ["--config", str(config.directory), "--log-level", args.log_level]
    children: list[Child] = []
    gateway: Child | None = None
    for service in services:
        argv = _aiub(service, *common)
        if service == "gateway":
            argv = _aiub("gateway", "--host", args.host, "--port", str(args.port), "--state-dir", str(state_dir),
                         *(["--insecure-no-auth"] if args.insecure_no_auth else []), *common)
        for name in replica_names(service, 1 if service == "gateway" else scale.get(service, 1)):
            child = Child(name, argv, {**env, "NATS_URL": service_urls[service]}, state_dir / f"{name}.log")
            children.append(child)
            gateway = child if service == "gateway" else gateway
    return children, gateway


def run_join(config: Config, args: argparse.Namespace, environment: Environment) -> int:
    try:
        lab, passwords, lab_dir = load_lab(args.lab)
        unknown = [p for p in args.provider if p not in config.providers]
        inactive = [p for p in args.provider if p in config.providers and config.providers[p].status != "active"]
        if unknown or inactive:
            raise LabError("; ".join([*(f"{p}: no such provider in {config.directory}" for p in unknown),
                                      *(f"{p}: disabled in the config" for p in inactive)]))
        scale = parse_scale(args.scale, args.provider)
        preferred = args.prefer or spread(lab, sum(socket.gethostname().encode()))
        nats_url = urls(lab, "worker", _password(passwords, "worker", lab_dir), preferred=preferred)
        env = {**_env(lab, lab_dir, passwords, config), "NATS_URL": nats_url}
    except (LabError, ScaleError) as e:
        print(f"aiub join: {e}", file=sys.stderr)
        return 2
    state_dir = Path(args.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    stop = _stop_on_signals()
    common = ["--config", str(config.directory), "--log-level", args.log_level]
    children = [Child(name, _aiub("worker", "--provider", provider, *common), env, state_dir / f"{name}.log")
                for provider in args.provider
                for name in replica_names(f"worker-{provider}", scale.get(f"worker-{provider}", 1))]
    try:
        for child in children:
            child.start()
        print(f"aiub join: {len(children)} worker(s) for {', '.join(args.provider)}, connecting out to "
              f"{len(lab.hubs)} hub node(s), {preferred} first; nothing listens on this host", flush=True)
        _supervise(children, stop, None)
    finally:
        _stop_all(children)
    return 0


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    return stop
