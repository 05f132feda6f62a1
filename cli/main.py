"""`aiub`: one command for every service, the whole stack, and its tools."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from shared import arguments

if TYPE_CHECKING:
    from shared.config import Config, Environment


def _common(parser: argparse.ArgumentParser,
            nats_default: str = "$NATS_URL, else nats://127.0.0.1:4222") -> None:
    parser.add_argument("--config", default=None,
                        help="config directory or a LiteLLM proxy YAML (default: $AIUB_CONFIG, else config/)")
    parser.add_argument("--nats", default=None, help=f"NATS URL (default: {nats_default})")
    parser.add_argument("--log-level", default="INFO")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """Every command; `command`: only that one with all its options (the others still listed)."""
    parser = argparse.ArgumentParser(prog="aiub", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _add_stack_commands(commands, command)
    _add_tool_commands(commands, command)
    return parser


def _add_stack_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser], wanted: str | None) -> None:
    """What runs: the whole stack, each service, a lab's hub and GPU hosts, the simulator."""
    up = commands.add_parser("up", help="start NATS (unless $NATS_URL) and every service")
    _common(up, nats_default="$NATS_URL, else its own nats-server on a free loopback port, supervised, "
                             "its state in --state-dir")
    up.add_argument("--port", type=arguments.port, default=4000, help="gateway port")
    up.add_argument("--host", default="127.0.0.1", help="gateway bind address")
    up.add_argument("--demo", action="store_true", help="also start simulated backends and route to them")
    up.add_argument("--state-dir", default=".aiub", help="where NATS keeps JetStream state, and logs")
    up.add_argument("--scale", default="", metavar="SERVICE=N,...",
                    help="replicas per service, e.g. router=2,worker.ollama=3 (worker=N: every provider's worker)")
    up.add_argument("--insecure-no-auth", action="store_true",
                    help="let the gateway serve a non-loopback --host without a master key")
    up.add_argument("--combined", action="store_true",
                    help="run the gateway, router, health and the workers in one process (`aiub services`), "
                         "each still its own NATS client, queue group and /metrics: less memory on a small box")

    gateway = commands.add_parser("gateway", help="the OpenAI-compatible HTTP gateway")
    _common(gateway)
    gateway.add_argument("--host", default="127.0.0.1")
    gateway.add_argument("--port", type=arguments.port, default=4000)
    gateway.add_argument("--insecure-no-auth", action="store_true",
                         help="serve a non-loopback address without a master key (anyone can call)")
    gateway.add_argument("--state-dir", default=".aiub", help="where the virtual key file lives without Redis")

    for name, text in (("router", "the routing service"), ("health", "the health service")):
        _common(commands.add_parser(name, help=text))
    commands.choices["router"].add_argument("--metrics-port", type=arguments.port_or_zero, default=None,
                                            help="serve Prometheus /metrics on this port (default: not served)")
    commands.choices["health"].add_argument("--metrics-port", type=arguments.port_or_zero, default=None,
                                            help="serve Prometheus /metrics on this port (default: not served)")

    worker = commands.add_parser("worker", help="serve one or more providers")
    _common(worker)
    worker.add_argument("--provider", nargs="+", required=True, metavar="KEY")
    worker.add_argument("--metrics-port", type=arguments.port_or_zero, default=None,
                        help="serve Prometheus /metrics on this port (0: any free port; default: not served)")

    services = commands.add_parser("services", help="several services in one process, "
                                                    "e.g. gateway,router,health,worker:ollama")
    _common(services)
    _define(services, wanted, "services", "cli.up.combined")
    _define(commands.add_parser("simulator", help="a simulated Ollama or OpenAI-compatible backend"),
            wanted, "simulator", "services.simulator.main")
    hub = commands.add_parser("hub", help="a hub host of a lab: its NATS cluster node, gateway, router, health")
    _common(hub)
    _define(hub, wanted, "hub", "cli.up.roles", "add_hub_arguments")
    join = commands.add_parser("join", help="a GPU host joins a lab: its providers' workers, connecting out to the hub")
    _common(join)
    _define(join, wanted, "join", "cli.up.roles", "add_join_arguments")


def _add_tool_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser], wanted: str | None) -> None:
    """The operator's tools: keys, config, usage, status, dashboard, logs, credentials, validation."""
    for name, text, module in (
            ("keys", "create, list and revoke virtual API keys", "cli.keys"),
            ("config", "config revisions on the bus: push, history, diff, rollback", "cli.config_live"),
            ("usage", "tokens and cost per key, model, provider and day", "cli.usage"),
            ("creds", "make a multi-host lab's NATS credentials and TLS certificates", "cli.creds")):
        _define(commands.add_parser(name, help=text), wanted, name, module)

    status = commands.add_parser("status", help="provider states, from the health service's KV bucket")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument("--nats", default=None,
                        help="NATS URL (default: the NATS of the stack found by --state-dir's rule, else $NATS_URL)")
    status.add_argument("--state-dir", default=None,
                        help="where `aiub up` keeps its state (default: $AIUB_STATE_DIR, else ./.aiub when it "
                             "holds a stack.json, else the state dir the running `aiub up` recorded)")

    _define(commands.add_parser("dashboard", help="live Textual dashboard: providers, latency, requests"),
            wanted, "dashboard", "cli.dashboard.main")
    _define(commands.add_parser("logs", help="read the services' log files that `aiub up` writes"),
            wanted, "logs", "cli.logs")

    validate = commands.add_parser("validate", help="check the config and report every problem")
    validate.add_argument("--config", default=None,
                          help="config directory or LiteLLM proxy YAML (default: $AIUB_CONFIG, else config/)")

    convert = commands.add_parser("import-litellm", help="write our config files from a LiteLLM proxy config")
    convert.add_argument("file", help="the LiteLLM proxy config (a YAML file with model_list)")
    convert.add_argument("--out", required=True, help="directory for providers.yaml and model-mappings.yaml")
    convert.add_argument("--force", action="store_true", help="overwrite files already there")


def _define(parser: argparse.ArgumentParser, wanted: str | None, command: str, module: str,
            function: str = "add_arguments") -> None:
    """`command`'s options, from the module that runs it; only when that command is the one asked
    for (or every command is): a module's imports (Redis, cryptography, Textual...) are then paid
    by the command that uses them, not by every service process that parses its own argv."""
    if wanted is None or wanted == command:
        getattr(importlib.import_module(module), function)(parser)


def _command_in(argv: Sequence[str]) -> str | None:
    """The subcommand `argv` names (its first word), or None (`aiub --help`, no command)."""
    return argv[0] if argv and not argv[0].startswith("-") else None


def _invalid_config(command: str, config: str | None, environ: Mapping[str, str]) -> int:
    """A command that cannot load its config says what `aiub validate` says, every problem with its
    fix (the loader stops at the first), and exits 2."""
    from cli.validate.command import run_validate

    print(f"aiub {command}: the config does not load; `aiub validate` says:", file=sys.stderr)
    run_validate(config, environ, out=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] = os.environ) -> int:
    """`environ` is read here and by load_config, once; what they find is passed on."""
    argv = sys.argv[1:] if argv is None else argv
    command = _command_in(argv)
    if command != "simulator":  # nats without aiohttp, before any other module imports nats
        import shared.nats_library  # noqa: F401
    args = build_parser(command).parse_args(argv)
    if args.command == "simulator":  # a stand-in backend: it needs none of aiub's config, logs or bus
        from services.simulator.main import main as simulator_main

        return simulator_main(args)
    # Imported here, not at the top: they would be most of the simulator's start.
    from shared import logs
    from shared.config import ConfigError, load_config, read_environment

    environment = read_environment(environ)
    if getattr(args, "metrics_port", 0) is None:
        args.metrics_port = environment.metrics_port
    done = _run_tool(args, environ, environment)
    if done is not None:
        return done
    logs.configure(args.command, getattr(args, "log_level", "INFO"))
    # Spans over OTLP when the environment names a collector.
    if args.command in ("gateway", "router", "worker", "services"):
        from shared.spans import install

        install(args.command, environment.otlp_traces_url)
    try:
        config = load_config(args.config, environ)
    except ConfigError:
        return _invalid_config(args.command, args.config, environ)
    for note in config.notes:
        print(f"aiub: LiteLLM config: {note}", file=sys.stderr)
    return _run_with_config(args, config, environment)


def _run_tool(args: argparse.Namespace, environ: Mapping[str, str], environment: Environment) -> int | None:
    """The commands that load no config themselves; None for the others."""
    if args.command == "dashboard":
        from cli.dashboard.main import main as dashboard_main

        return dashboard_main(args, environ, environment)
    if args.command == "logs":
        from cli.logs import main as logs_main

        return logs_main(args)
    if args.command == "status":
        from cli.status import main as status_main

        return status_main(args, environment)
    if args.command == "config":
        from cli.config_live import main as config_main

        return config_main(args, environ, environment)
    if args.command == "validate":
        from cli.validate.command import run_validate

        return run_validate(args.config, environ)
    if args.command == "creds":
        from cli.creds import main as creds_main

        return creds_main(args)
    if args.command == "import-litellm":
        from cli.import_litellm import run_import

        return run_import(args.file, args.out, args.force)
    return None


def _run_with_config(args: argparse.Namespace, config: Config, environment: Environment) -> int:
    nats = getattr(args, "nats", None) or environment.nats_url
    if args.command == "gateway":
        from services.gateway.main import serve as gateway

        return gateway(config, args.host, args.port, nats, insecure_no_auth=args.insecure_no_auth,
                       state_dir=args.state_dir)
    if args.command == "keys":
        from cli.keys import main as keys_main

        return keys_main(args, config)
    if args.command in ("hub", "join"):
        from cli.up.roles import run_hub, run_join

        return (run_hub if args.command == "hub" else run_join)(config, args, environment)
    if args.command == "usage":
        from cli.usage import main as usage_main

        return usage_main(args, config, environment)
    if args.command == "up":
        from cli.up.stack import run_stack

        return run_stack(config, args, environment)

    if args.command == "services":
        from cli.up.combined import main as services_main

        return services_main(args, config, nats, environment.metrics_host)

    from shared.lifecycle import run_until_signalled

    if args.command == "router":
        from services.router.main import serve as router

        return run_until_signalled(lambda stop: router(config, nats, stop, args.metrics_port,
                                                               environment.metrics_host))
    if args.command == "health":
        from services.health.main import serve as health

        return run_until_signalled(lambda stop: health(config, nats, stop, args.metrics_port,
                                                               environment.metrics_host))
    from services.workers.main import serve as worker

    return run_until_signalled(lambda stop: worker(config, args.provider, nats, stop, args.metrics_port,
                                                          environment.metrics_host))


if __name__ == "__main__":
    sys.exit(main())
