"""The compose tier: compose.yaml, the Dockerfile and the images, run in containers by podman.

Runs with `./dev test-compose` (`pytest -m compose tests/compose`); in any other run its tests
are skipped. Without podman, runc and debootstrap, or where podman cannot start a container,
every test skips and says why. The stand-in images (deploy/standins/build.py) and podman's
layer cache stay between runs.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compose.stack import SERVICES, Stack

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


def _standins():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("aiub_standins", ROOT / "deploy" / "standins" / "build.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = "compose" in (config.getoption("markexpr") or "").replace("not compose", "")
    for item in items:
        if Path(str(item.path)).parent == HERE:
            item.add_marker(pytest.mark.compose)
            if not selected:
                item.add_marker(pytest.mark.skip(reason="the compose tier runs with ./dev test-compose"))


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    standins = _standins()
    reason = standins.why_not()
    if reason:
        pytest.skip(f"compose tier: {reason}")
    started = time.monotonic()
    for line in standins.build_all():
        print(line)
    stack = Stack(tmp_path_factory.mktemp("compose"), standins.podman_env())
    stack.compose("down", "-v", "--remove-orphans")  # whatever an interrupted run left
    stack.compose("build", "gateway")  # compose.yaml's `build: .`, once: every aiub service runs that image
    print(f"images ready in {time.monotonic() - started:.0f}s")
    stack.compose("up", "-d", *SERVICES)
    try:
        stack.wait_healthy(stack.containers())
        print(f"stack healthy {time.monotonic() - started:.0f}s after the start")
        yield stack
    finally:
        stack.compose("down", "-v", "--remove-orphans")
