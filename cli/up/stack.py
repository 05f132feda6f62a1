"""`aiub up`: NATS (unless $NATS_URL), then every service as a supervised child process.

A child that dies is restarted with a growing delay (a crash loop does not spin the CPU);
SIGINT or SIGTERM stops all of them, gateway first so no new work arrives, NATS last. Each
child also dies with this process (PR_SET_PDEATHSIG): a `kill -9` of `aiub up` leaves no orphan.
The embedded NATS is a child too (`bus_keeper`): restarted on its port with its store, and if
it cannot be brought back, `aiub up` stops everything and exits 1 for its own supervisor.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cli import stack_dir
from cli.up.bus_keeper import BusKeeper, BusLost
from cli.up.scaling import ScaleError, parse_scale, replica_names
from shared.bus import connect_once
from shared.config import Config, Environment
from shared.embedded_nats import EmbeddedNats, free_port, wait_for_port
from shared.health_view import forget_states
from shared.processes import die_with_parent

SIMULATED_TYPES = {"ollama": "ollama", "openai_compatible": "openai", "vllm": "openai", "llama_cpp": "openai"}


@dataclass
class Child:
    name: str
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    next_start: float = 0.0
    started_at: float = field(default=0.0)
    metrics_url: str | None = None
    metrics_urls: dict[str, str] = field(default_factory=dict)  # --combined: each hosted service's

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv, env=self.env, stdout=log, stderr=log,
                                            stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        self.started_at = time.monotonic()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def _aiub(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli", *args]


def simulated(config: Config) -> list[str]:
    """The providers `--demo` replaces with simulators: the active local ones. The rest (cloud
    APIs, disabled providers) are disabled in the demo's config: no worker, nothing routed."""
    return [name for name, spec in config.providers.items()
            if spec.status == "active" and spec.type in SIMULATED_TYPES]


def _demo_config(config: Config, state_dir: Path, children: list[Child], env: dict[str, str]) -> Path:
    """Start a simulator per local provider and write a config that points the providers at them."""
    providers_yaml = {}
    local = simulated(config)
    for name, spec in config.providers.items():
        entry = spec.model_dump(mode="json", exclude_defaults=True)
        flavor = SIMULATED_TYPES.get(spec.type)
        if flavor is not None and name in local:
            port = free_port()
            models = sorted({spec.backend_model(m) for m in spec.models} or {"demo-model"})
            children.append(Child(f"simulator-{name}", _aiub("simulator", "--flavor", flavor, "--port", str(port),
                                                             "--models", ",".join(models), "--ttft-ms", "20",
                                                             "--itl-ms", "5"),
                                  env, state_dir / f"simulator-{name}.log"))
            entry["base_url"] = f"http://127.0.0.1:{port}"
        else:
            entry["status"] = "disabled"
        providers_yaml[name] = entry
    demo_dir = state_dir / "demo-config"
    demo_dir.mkdir(parents=True, exist_ok=True)
    (demo_dir / "providers.yaml").write_text(yaml.safe_dump({"providers": providers_yaml}, sort_keys=False))
    (demo_dir / "model-mappings.yaml").write_text(
        yaml.safe_dump(config.mappings.model_dump(mode="json", exclude_defaults=True), sort_keys=False))
    (demo_dir / "aiub.yaml").write_text(
        yaml.safe_dump(config.runtime.model_dump(mode="json", exclude_defaults=True), sort_keys=False))
    return demo_dir


def demo_summary(config: Config, local: list[str], demo_dir: Path) -> str:
    """What `--demo` left out, said the way `aiub validate` says it of the config the demo serves."""
    left_out = [name for name in config.providers if name not in local]
    if not left_out:
        return "demo: every provider is simulated"
    return (f"demo: simulated {', '.join(local) or 'none'}; disabled (not simulated): {', '.join(left_out)}: "
            f"their models are not listed and answer 503. `aiub validate --config {demo_dir}` checks the "
            f"config the demo serves")


def _report_backends(config: Config) -> None:
    from shared.http_library import httpx  # here, not at the top: the children start sooner

    with httpx.Client(timeout=1.0, trust_env=False) as client:  # one TLS context, not one a provider
        for name, spec in config.providers.items():
            if spec.status != "active" or spec.probe_path is None:
                continue
            root = spec.base_url[:-3] if spec.base_url.endswith("/v1") else spec.base_url
            try:
                client.get(root + spec.probe_path)
                print(f"  backend  {name:<18} {spec.base_url}  reachable")
            except httpx.HTTPError:
                print(f"  backend  {name:<18} {spec.base_url}  NOT reachable (requests to it fail over or get 503)")


def forget_provider_states(nats_url: str) -> None:
    """A new stack on its own NATS starts from fresh provider states. The state dir keeps the
    health bucket, and a previous run's open circuits (say, backends that were not started yet)
    would otherwise answer 503 for their whole open period after everything is up. A shared
    NATS (`NATS_URL`) keeps its states: other services may be relying on them."""
    async def forget() -> None:
        nc = await connect_once(nats_url, 5)
        try:
            await forget_states(nc.jetstream())
        finally:
            await nc.close()

    try:
        asyncio.run(forget())
    except Exception as e:
        print(f"aiub up: could not clear the previous run's provider states ({e!r}); the health service "
              f"will correct them after their open periods", file=sys.stderr)


def auth_summary(has_master_key: bool, master_key_env: str) -> str:
    """The line `aiub up` prints at start, so nobody believes keys are enforced when they are not."""
    if has_master_key:
        return f"auth: on (master key from ${master_key_env}); clients send it or a virtual key (aiub keys create)"
    return f"auth: off, any client may call; set ${master_key_env} to require keys"


def run_stack(config: Config, args: argparse.Namespace, environment: Environment) -> int:
    # Workers for the providers the served config has active: with --demo, the simulated ones.
    active = simulated(config) if args.demo else [n for n, s in config.providers.items() if s.status == "active"]
    try:
        scale = parse_scale(getattr(args, "scale", None) or "", active)
    except ScaleError as e:
        print(f"aiub up: --scale: {e}", file=sys.stderr)
        return 2
    if getattr(args, "combined", False) and any(n > 1 for n in scale.values()):
        print("aiub up: --combined hosts one of each service in one process; --scale needs their own processes",
              file=sys.stderr)
        return 2
    if _listening(args.host, args.port):
        print(f"aiub up: something already listens on {args.host}:{args.port} (another aiub, or LiteLLM?); "
              f"stop it or pass --port", file=sys.stderr)
        return 2
    state_dir = Path(args.state_dir).resolve()
    state_dir.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    embedded, nats_url = _bus(args.nats or environment.nats_url, state_dir)
    env = {**os.environ, "NATS_URL": nats_url, "PYTHONUNBUFFERED": "1"}
    children: list[Child] = []
    config_dir = _demo_config(config, state_dir, children, env) if args.demo else Path(config.directory)
    publish_config(nats_url, config_dir)
    gateway = _plan(children, args, active, scale, config_dir, state_dir, env)
    pointer = _record_stack(state_dir, nats_url, args, _assign_metrics_ports(children, gateway, args.port),
                            environment)
    try:
        for child in children:
            child.start()
        wait_for_port(args.host if args.host != "0.0.0.0" else "127.0.0.1", args.port, 30.0, gateway.process)
        _wait_ready(f"http://127.0.0.1:{args.port}/ready", 30.0)
        _announce(config, args, children, embedded, nats_url, active, config_dir)
        _supervise(children, stop, BusKeeper(embedded) if embedded is not None else None)
    except BusLost as e:
        print(f"aiub up: the embedded NATS is gone and could not be brought back: {e}. Stopping every "
              f"service and exiting 1, so that whatever runs aiub up (systemd, a container runtime) can "
              f"start it afresh. See {embedded.state_dir / 'nats-server.log' if embedded else state_dir}",
              file=sys.stderr, flush=True)
        return 1
    except (RuntimeError, TimeoutError) as e:
        _report_failure(e, children, state_dir)
        return 1
    finally:
        _stop_all(children)
        if embedded is not None:
            embedded.stop()
        (state_dir / "stack.json").unlink(missing_ok=True)
        stack_dir.forget(state_dir, pointer)
    return 0


def _bus(nats_url: str | None, state_dir: Path) -> tuple[EmbeddedNats | None, str]:
    """The NATS to use: the one named, else our own on a free port (fresh provider states)."""
    if nats_url:
        return None, nats_url
    embedded = EmbeddedNats(state_dir / "nats").start()
    forget_provider_states(embedded.url)
    return embedded, embedded.url


def publish_config(nats_url: str, config_dir: Path) -> None:
    """The config `aiub up` was given becomes the bus's current revision before any service starts
    (docs/configuration.md, "Live config"): services follow the bucket, not their files, once it
    holds a revision. Unchanged files publish nothing; a refused push leaves the bucket's revision."""
    from cli.config_live import push_directory

    if not config_dir.is_dir():
        print(f"aiub up: {config_dir} is a LiteLLM file: not published; services run it from the file "
              f"(`aiub import-litellm` makes a directory that `aiub config push` can publish)", file=sys.stderr)
        return
    if push_directory(nats_url, config_dir, "aiub up", os.environ) != 0:
        print("aiub up: --config was not published (above); services run the bucket's current revision, if any, "
              "else their files", file=sys.stderr)


def _plan(children: list[Child], args: argparse.Namespace, active: list[str], scale: dict[str, int],
          config_dir: Path, state_dir: Path, env: dict[str, str]) -> Child:
    """Every service's children, replicas included; returns the one that serves the gateway."""
    common = ["--config", str(config_dir), "--log-level", args.log_level]
    gateway_args = ["--host", args.host, "--port", str(args.port), "--state-dir", str(state_dir)]
    gateway_args += ["--insecure-no-auth"] if args.insecure_no_auth else []
    if getattr(args, "combined", False):  # one process for all of them (cli/up/combined.py)
        from cli.up.combined import child_argv

        argv, urls = child_argv(active, common, gateway_args, args.port)
        hosting = Child("services", argv, env, state_dir / "services.log", metrics_urls=urls)
        children.append(hosting)
        return hosting
    services = [("router", _aiub("router", *common)), ("health", _aiub("health", *common))]
    services += [(f"worker-{name}", _aiub("worker", "--provider", name, *common)) for name in active]
    for service, argv in services:
        for name in replica_names(service, scale.get(service, 1)):
            children.append(Child(name, argv, env, state_dir / f"{name}.log"))
    gateway = Child("gateway", _aiub("gateway", *gateway_args, *common), env, state_dir / "gateway.log")
    children.append(gateway)
    return gateway


def _record_stack(state_dir: Path, nats_url: str, args: argparse.Namespace, metrics_urls: dict[str, str],
                  environment: Environment) -> Path | None:
    """`aiub status`, `aiub dashboard` and the shell widgets find the stack through stack.json, from
    any directory through the pointer to this state dir (cli/stack_dir.py); returns the pointer."""
    (state_dir / "stack.json").write_text(json.dumps(
        {"nats_url": nats_url, "gateway": f"http://{args.host}:{args.port}", "metrics": metrics_urls}))
    pointer = stack_dir.pointer_file(environment.xdg_state_home, environment.home)
    try:
        stack_dir.record(state_dir, pointer)
    except OSError as e:
        print(f"aiub up: could not record this stack in {pointer} ({e}); `aiub status` finds it from "
              f"elsewhere with --state-dir {state_dir}", file=sys.stderr)
    return pointer


def _announce(config: Config, args: argparse.Namespace, children: list[Child], embedded: EmbeddedNats | None,
              nats_url: str, active: list[str], config_dir: Path) -> None:
    print(f"aiub is up: http://{args.host}:{args.port}/v1   (NATS {nats_url}{', embedded' if embedded else ''})")
    print(auth_summary(config.runtime.auth.master_key() is not None, config.runtime.auth.master_key_env))
    for child in children:
        listens = child.metrics_url or _simulator_url(child)
        where = f"{'metrics' if child.metrics_url else 'backend'} {listens:<38}" if listens else ""
        print(f"  {child.name:<26} pid {child.process.pid if child.process else '-':<8} {where} "
              f"log {child.log_path}")
    if embedded is not None and embedded.process is not None:
        print(f"  {'nats-server':<26} pid {embedded.process.pid:<8} {'nats':<7} {embedded.url:<38} "
              f"log {embedded.state_dir / 'nats-server.log'}")
    if args.demo:
        print(demo_summary(config, active, config_dir))
    else:
        _report_backends(config)
    print("Ctrl-C stops everything.", flush=True)


def _report_failure(error: Exception, children: list[Child], state_dir: Path) -> None:
    print(f"aiub up failed: {error}", file=sys.stderr)
    for child in children:  # the reason is usually the last thing a dead child said
        if child.process is not None and child.process.poll() is not None:
            print(f"  {child.name} exited with {child.process.returncode}; its log ends:\n"
                  + "\n".join(f"    {line}" for line in _tail(child.log_path, 5)), file=sys.stderr)
    print(f"see the logs in {state_dir}", file=sys.stderr)


def _assign_metrics_ports(children: list[Child], gateway: Child, gateway_port: int) -> dict[str, str]:
    """A free `/metrics` port per service (the gateway serves its own on its HTTP port), given in
    `AIUB_METRICS_PORT`; returns each service's metrics URL."""
    for child in children:
        if child.metrics_urls:
            child.metrics_url = next(iter(child.metrics_urls.values()))
        elif child is gateway:
            child.metrics_url = f"http://127.0.0.1:{gateway_port}/metrics"
        elif not child.name.startswith("simulator-"):
            port = free_port()
            child.env = {**child.env, "AIUB_METRICS_PORT": str(port)}
            child.metrics_url = f"http://127.0.0.1:{port}/metrics"
    return {name: url for c in children
            for name, url in (c.metrics_urls or {c.name: c.metrics_url or ""}).items() if url}


def _simulator_url(child: Child) -> str | None:
    if not child.name.startswith("simulator-") or "--port" not in child.argv:
        return None
    return f"http://127.0.0.1:{child.argv[child.argv.index('--port') + 1]}"


def _tail(path: Path, lines: int) -> list[str]:
    try:
        return [line for line in path.read_text(errors="replace").splitlines() if line.strip()][-lines:]
    except OSError:
        return []


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1" if host in ("0.0.0.0", "::") else host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _wait_ready(url: str, deadline_s: float) -> None:
    from shared.http_library import httpx

    give_up_at = time.monotonic() + deadline_s
    with httpx.Client(timeout=1.0, trust_env=False) as client:
        while time.monotonic() < give_up_at:
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
    raise TimeoutError(f"the gateway was not ready within {deadline_s:g}s")


def _supervise(children: list[Child], stop: threading.Event, bus: BusKeeper | None) -> None:
    while not stop.wait(0.2):
        if bus is not None:
            bus.tick()  # BusLost ends the stack
        now = time.monotonic()
        for child in children:
            if child.alive():
                continue
            if child.next_start == 0.0:
                code = child.process.returncode if child.process else None
                delay = min(30.0, 0.5 * 2 ** min(child.restarts, 6))
                if now - child.started_at > 60:
                    delay, child.restarts = 0.5, 0
                child.next_start = now + delay
                print(f"  {child.name} exited ({code}); restarting in {delay:g}s", flush=True)
            elif now >= child.next_start:
                child.restarts += 1
                child.next_start = 0.0
                child.start()


def _stop_all(children: list[Child]) -> None:
    # Gateway first (no new requests), then routers and workers, simulators last.
    order = sorted(children, key=lambda c: (c.name != "gateway", c.name.startswith("simulator")))
    for child in order:
        if child.alive() and child.process:
            child.process.terminate()
    give_up_at = time.monotonic() + 10
    for child in order:
        if child.process is None:
            continue
        try:
            child.process.wait(max(0.1, give_up_at - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.process.kill()
            child.process.wait()
