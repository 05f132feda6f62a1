"""`aiub services`: the spec of what one process hosts, and how the hosted services end together."""

from __future__ import annotations

import asyncio

import pytest

from cli.up.combined import Hosted, SpecError, argv, child_argv, host_all, parse_ports, parse_spec


def test_the_spec_names_each_service_once() -> None:
    hosted = parse_spec("gateway,router, health,worker:ollama,worker:a+b")
    assert hosted == [Hosted("gateway"), Hosted("router"), Hosted("health"), Hosted("worker", ("ollama",)),
                      Hosted("worker", ("a", "b"))]
    assert [h.name for h in hosted] == ["gateway", "router", "health", "worker-ollama", "worker-a-b"]


@pytest.mark.parametrize("spec", ["", "proxy", "worker", "router:x", "gateway:x", "router,router", "worker:a,worker:a"])
def test_a_bad_spec_is_refused(spec: str) -> None:
    with pytest.raises(SpecError):
        parse_spec(spec)


def test_metrics_ports_by_name_or_spec_and_back_to_argv() -> None:
    hosted = parse_spec("router,worker:ollama")
    ports = parse_ports(["router=9101,worker:ollama=9102"], hosted)
    assert ports == {"router": 9101, "worker-ollama": 9102}
    assert parse_ports(argv(hosted, ports)[2::2], hosted) == ports
    with pytest.raises(SpecError):
        parse_ports(["health=9103"], hosted)
    with pytest.raises(SpecError, match="its own HTTP port"):
        parse_ports(["gateway=9104"], parse_spec("gateway,router"))
    with pytest.raises(SpecError, match="a port is 0–65535"):  # the socket layer would wrap it to 4464
        parse_ports(["router=70000"], hosted)


def test_up_combined_hosts_the_gateway_with_its_options_and_names_every_metrics_page() -> None:
    line, urls = child_argv(["ollama"], ["--config", "c"], ["--host", "127.0.0.1", "--port", "4100"], 4100)
    assert line[line.index("services") + 1] == "gateway,router,health,worker:ollama"
    assert line[-6:] == ["--host", "127.0.0.1", "--port", "4100", "--config", "c"]
    assert urls["gateway"] == "http://127.0.0.1:4100/metrics"
    assert set(urls) == {"gateway", "router", "health", "worker-ollama"}
    assert len(set(urls.values())) == 4


def _run(services: dict[str, object], stop_after: float | None) -> int:
    async def main() -> int:
        stop = asyncio.Event()
        if stop_after is not None:
            asyncio.get_running_loop().call_soon(stop.set)
        return await host_all(services, stop)  # type: ignore[arg-type]
    return asyncio.run(main())


def test_a_stop_drains_every_service_and_ends_with_0() -> None:
    drained: list[str] = []

    def service(name: str):  # type: ignore[no-untyped-def]
        async def serve(stop: asyncio.Event) -> None:
            await stop.wait()
            drained.append(name)
        return serve

    assert _run({"router": service("router"), "health": service("health")}, stop_after=0) == 0
    assert sorted(drained) == ["health", "router"]


def test_one_failing_service_stops_the_others_and_ends_with_1() -> None:
    drained: list[str] = []

    async def fails(stop: asyncio.Event) -> None:
        raise ConnectionError("no bus")

    async def waits(stop: asyncio.Event) -> None:
        await stop.wait()
        drained.append("health")

    assert _run({"router": fails, "health": waits}, stop_after=None) == 1
    assert drained == ["health"]


def test_a_service_that_returns_by_itself_counts_as_failed() -> None:
    async def returns(stop: asyncio.Event) -> None:
        return None

    assert _run({"router": returns}, stop_after=None) == 1
