"""`aiub services gateway,router,health,worker:KEY,...`: several services in one process, for a small box.

Each service is the very `serve()` its own command runs (`aiub gateway`, `aiub router`, `aiub health`,
`aiub worker --provider KEY`), started as its own asyncio task on one event loop. Nothing is shared but the
loop and the interpreter: each task opens its own NATS connection (its own client name, queue
group subscriptions, reconnects and drain), builds its own Prometheus registry on its own
`/metrics` port (the gateway's is its HTTP port, as alone), and tags its log lines with its own
`service`. So moving a service to its own
process or host is a change of command line, not of code.

Rules:
- SIGTERM or SIGINT sets every service's stop event; each drains as it would alone.
- A service that raises, or returns before it was asked to stop, stops the others and the
  process exits 1: the supervisor (`aiub up`) then restarts the whole process, and nothing runs
  half of a layout it was not asked for.
- `aiub up --combined` hosts all of them here, the gateway included: its HTTP server is one more
  task on the same loop (`--host`, `--port`, `--state-dir`, `--insecure-no-auth` are its options).

The saving is the interpreter and the libraries each process would load again (~40-60 MB a
process); the cost is one GIL and one event loop for all of them (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared import arguments, logs

if TYPE_CHECKING:
    from shared.config import Config

log = logs.get("services")

KINDS = ("gateway", "router", "health", "worker")


@dataclass(frozen=True)
class Hosted:
    """One service of the spec: `router`, `health`, or `worker:KEY` (`worker:a+b`: one worker, two providers)."""
    kind: str
    providers: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        """Its name in logs, `stack.json` and `--metrics-port`: router, health, worker-KEY."""
        return self.kind if not self.providers else f"worker-{'-'.join(self.providers)}"

    @property
    def spec(self) -> str:
        return self.kind if not self.providers else f"worker:{'+'.join(self.providers)}"


class SpecError(ValueError):
    pass


def parse_spec(text: str) -> list[Hosted]:
    """`router,health,worker:ollama` -> the services to host; each at most once."""
    hosted: list[Hosted] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        kind, _, rest = item.partition(":")
        if kind not in KINDS:
            raise SpecError(f"{item!r}: a service is gateway, router, health or worker:PROVIDER")
        providers = tuple(p for p in rest.split("+") if p)
        if (kind == "worker") != bool(providers):
            raise SpecError(f"{item!r}: a worker names its provider (worker:KEY), and only a worker does")
        entry = Hosted(kind, providers)
        if entry.name in {h.name for h in hosted}:
            raise SpecError(f"{item!r} is named twice")
        hosted.append(entry)
    if not hosted:
        raise SpecError("name at least one service, e.g. router,health,worker:ollama")
    return hosted


def parse_ports(items: list[str], hosted: list[Hosted]) -> dict[str, int]:
    """`--metrics-port NAME=PORT` (repeatable, or comma-separated) -> service name -> port."""
    names = {h.name: h.name for h in hosted} | {h.spec: h.name for h in hosted}
    ports: dict[str, int] = {}
    for item in (p.strip() for text in items for p in text.split(",")):
        if not item:
            continue
        name, sep, port = item.rpartition("=")
        if not sep or name not in names or not port.isdigit():
            raise SpecError(f"--metrics-port {item!r}: expected NAME=PORT, NAME one of "
                            f"{', '.join(sorted(h.name for h in hosted))}")
        if names[name] == "gateway":
            raise SpecError("the gateway serves /metrics on its own HTTP port (--port), not on a port of its own")
        try:
            ports[names[name]] = arguments.port_or_zero(port)
        except argparse.ArgumentTypeError as e:
            raise SpecError(f"--metrics-port {item!r}: {e}") from None
    return ports


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SERVICES", help="comma-separated: gateway, router, health, worker:PROVIDER "
                                                         "(worker:a+b: one worker serving two providers)")
    parser.add_argument("--metrics-port", action="append", default=[], metavar="NAME=PORT",
                        help="serve a service's Prometheus /metrics on PORT (NAME: router, health, "
                             "worker-PROVIDER); repeatable. Default: not served")
    gateway = parser.add_argument_group("the gateway, when hosted (as `aiub gateway`)")
    gateway.add_argument("--host", default="127.0.0.1", help="bind address")
    gateway.add_argument("--port", type=arguments.port, default=4000)
    gateway.add_argument("--state-dir", default=".aiub", help="where the gateway keeps its key store")
    gateway.add_argument("--insecure-no-auth", action="store_true",
                         help="allow a public bind without a master key (as `aiub gateway`)")


def argv(hosted: list[Hosted], ports: dict[str, int]) -> list[str]:
    """The `aiub services` arguments that host `hosted`, each service's metrics on its port."""
    out = [",".join(h.spec for h in hosted)]
    for name, port in ports.items():
        out += ["--metrics-port", f"{name}={port}"]
    return out


def _serve(entry: Hosted, config: Config, nats: str | None, port: int | None, host: str | None,
           args: argparse.Namespace) -> Callable[[asyncio.Event], Awaitable[None]]:
    if entry.kind == "gateway":
        from services.gateway.main import serve_hosted as gateway

        return lambda stop: gateway(config, args.host, args.port, nats, stop, insecure_no_auth=args.insecure_no_auth,
                                    state_dir=args.state_dir)
    if entry.kind == "router":
        from services.router.main import serve as router

        return lambda stop: router(config, nats, stop, port, host)
    if entry.kind == "health":
        from services.health.main import serve as health

        return lambda stop: health(config, nats, stop, port, host)
    from services.workers.main import serve as worker

    return lambda stop: worker(config, list(entry.providers), nats, stop, port, host)


async def host_all(services: dict[str, Callable[[asyncio.Event], Awaitable[None]]], stop: asyncio.Event) -> int:
    """Run each service as its own task until `stop`; 1 when one of them failed or ended by itself."""
    from shared.log_library import structlog

    stops = {name: asyncio.Event() for name in services}

    async def one(name: str) -> None:
        structlog.contextvars.bind_contextvars(service=name)  # this task's context only
        await services[name](stops[name])
        if not stops[name].is_set():
            raise RuntimeError(f"{name} returned before it was asked to stop")

    tasks = {asyncio.create_task(one(name), name=name): name for name in services}

    async def first_end() -> None:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)

    ended = asyncio.create_task(first_end())
    await asyncio.wait([ended, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    stop.set()
    for event in stops.values():
        event.set()
    _, late = await asyncio.wait(tasks, timeout=20)
    for task in late:
        task.cancel()
    failed = False
    for task, name in tasks.items():
        if task.done() and not task.cancelled() and task.exception() is not None:
            failed = True
            log.error("service_failed", failed=name, error=repr(task.exception()))
    ended.cancel()
    return 1 if failed or bool(late) else 0


def main(args: argparse.Namespace, config: Config, nats: str | None, metrics_host: str | None) -> int:
    import uvloop

    try:
        hosted = parse_spec(args.spec)
        ports = parse_ports(args.metrics_port, hosted)
    except SpecError as e:
        print(f"aiub services: {e}", file=sys.stderr)
        return 2
    services = {h.name: _serve(h, config, nats, ports.get(h.name), metrics_host, args) for h in hosted}

    async def runner() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        log.info("services_hosting", services=list(services))
        return await host_all(services, stop)

    return uvloop.run(runner())


def child_argv(active: list[str], common: list[str], gateway: list[str],
               gateway_port: int) -> tuple[list[str], dict[str, str]]:
    """`aiub up --combined`: the `aiub services` command line hosting the gateway (`gateway`: its
    options), router, health and a worker per active provider, each on a free `/metrics` port (the
    gateway on its HTTP port); and each service's metrics URL."""
    from shared.embedded_nats import free_port

    hosted = [Hosted("router"), Hosted("health")] + [Hosted("worker", (name,)) for name in active]
    ports = {h.name: free_port() for h in hosted}
    urls = {"gateway": f"http://127.0.0.1:{gateway_port}/metrics"}
    urls |= {name: f"http://127.0.0.1:{port}/metrics" for name, port in ports.items()}
    hosted.insert(0, Hosted("gateway"))
    return [sys.executable, "-m", "cli", "services", *argv(hosted, ports), *gateway, *common], urls
