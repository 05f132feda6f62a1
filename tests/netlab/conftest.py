"""The namespace lab tier: aiub across hosts made of network namespaces (tests/support/netlab.py).

Runs with `./dev test-netlab` (`pytest -m netlab tests/netlab`); in any other run its tests are
skipped. Where namespaces cannot be made (not root, no iproute2) every test skips and says why.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.lab_stack import LabStack
from tests.support.netlab import unavailable


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    selected = "netlab" in (config.getoption("markexpr") or "").replace("not netlab", "")
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.netlab)
            if not selected:
                item.add_marker(pytest.mark.skip(reason="the namespace lab tier runs with ./dev test-netlab"))


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabStack]:
    """Three hub hosts (NATS cluster node, gateway, router, health each) and two GPU hosts."""
    reason = unavailable()
    if reason:
        pytest.skip(f"namespace lab: {reason}")
    stack = LabStack(tmp_path_factory.mktemp("netlab"))
    try:
        yield stack.start()
    finally:
        stack.close()
