"""`aiub up --scale router=2,worker.ollama=3`: how many replicas of each service. Pure.

The same topology as `docker compose up --scale router=2 --scale worker-ollama=3`, as processes
on one machine: replicas of a service share its queue group (`router`, `worker.<provider>`), so
NATS spreads the work between them and no replica needs to know about the others.

Names accepted: `router`, `health` (replicas elect one leader), `worker.<provider>` or the
compose name `worker-<provider>`, and `worker` for every active provider's worker. The gateway
is not scaled here: it binds one port; more gateways go behind a load balancer (compose).
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_REPLICAS = 64


class ScaleError(ValueError):
    """The --scale value names an unknown service or a bad count; the message says which."""


def parse_scale(text: str, providers: Sequence[str]) -> dict[str, int]:
    """Replicas per child name (`router`, `health`, `worker-<provider>`); a service not named runs once."""
    scale: dict[str, int] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        service, sep, count_text = (s.strip() for s in item.partition("="))
        if not sep or not service:
            raise ScaleError(f"{item!r}: write SERVICE=N, e.g. router=2,worker.{_example(providers)}=3")
        try:
            count = int(count_text)
        except ValueError:
            raise ScaleError(f"{item!r}: {count_text!r} is not a number of replicas") from None
        if not 1 <= count <= MAX_REPLICAS:
            raise ScaleError(f"{item!r}: replicas must be from 1 to {MAX_REPLICAS}")
        for name in _children(service, providers):
            if name in scale:
                raise ScaleError(f"{item!r}: {name} is scaled twice")
            scale[name] = count
    return scale


def _children(service: str, providers: Sequence[str]) -> list[str]:
    if service in ("router", "health"):
        return [service]
    if service == "worker":
        return [f"worker-{p}" for p in providers]
    if service == "gateway":
        raise ScaleError("the gateway binds one port and is not scaled by `aiub up`: run more gateways behind a "
                         "load balancer (see docs/deployment.md)")
    for prefix in ("worker.", "worker-"):
        if service.startswith(prefix):
            provider = service[len(prefix):]
            if provider not in providers:
                raise ScaleError(f"{service!r}: no active provider {provider!r} (active: "
                                 f"{', '.join(providers) or 'none'})")
            return [f"worker-{provider}"]
    raise ScaleError(f"{service!r}: scalable services are router, health, worker and worker.<provider>")


def replica_names(service: str, count: int) -> list[str]:
    """One replica keeps the service's own name (and log file), as without --scale."""
    return [service] if count == 1 else [f"{service}-{i}" for i in range(1, count + 1)]


def _example(providers: Sequence[str]) -> str:
    return providers[0] if providers else "ollama"
