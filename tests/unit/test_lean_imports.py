"""What a service's start imports: not the optional packages its libraries would load only because
they are installed (shared/lean_imports.py), not aiohttp for nats-py (shared/nats_library.py), not
Redis without a Redis URL, and nothing of aiub's config or logging in the simulator. Each is a
fresh interpreter, as a service starts; tests/integration/test_demo_stack.py looks at the running
processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.lean_imports import hidden
from shared.nats_library import servers

ROOT = Path(__file__).resolve().parents[2]


def modules_after(code: str) -> set[str]:
    """The top-level packages a fresh interpreter holds after running `code`."""
    script = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_a_hidden_module_cannot_be_imported_inside_and_can_after() -> None:
    assert "shared.never_imported_here" not in sys.modules
    with hidden("shared.never_imported_here"), pytest.raises(ImportError):
        import shared.never_imported_here  # type: ignore[import-not-found]  # noqa: F401
    assert "shared.never_imported_here" not in sys.modules


def test_a_module_already_loaded_is_not_hidden() -> None:
    import json as loaded

    with hidden("json"):
        import json as again
    assert again is loaded and sys.modules["json"] is loaded


@pytest.mark.parametrize("service", ["services.gateway.main", "services.router.main", "services.health.main",
                                     "services.workers.main", "cli.up.stack", "cli.up.combined"])
def test_a_service_start_imports_no_console_tools_no_trio_and_no_redis(service: str) -> None:
    """(`click` is no test: uvicorn imports it for its own command line, a few milliseconds.)"""
    loaded = modules_after(f"import {service}")
    assert "structlog" in loaded or service == "cli.up.stack"
    assert not {"rich", "pygments", "trio", "redis"} & loaded


def test_the_simulator_command_loads_no_config_logging_or_validation_library() -> None:
    loaded = modules_after("import cli.main, services.simulator.main")
    assert not {"pydantic", "structlog", "yaml", "nats"} & loaded


def test_logging_still_works_once_rich_is_loaded_by_someone_else() -> None:
    """The dashboard loads rich through Textual; structlog imported after it keeps working."""
    loaded = modules_after("import rich.console\nfrom shared import logs\nlogs.configure('t')\nlogs.get().info('x')")
    assert {"rich", "structlog"} <= loaded


def test_nats_comes_without_aiohttp_until_a_url_asks_for_websocket() -> None:
    script = ("import sys\nfrom shared.nats_library import servers\nbefore = 'aiohttp' in sys.modules\n"
              "servers('nats://a:4222,tls://b:4222')\ntcp = 'aiohttp' in sys.modules\n"
              "from nats.aio import transport\nservers('ws://c:8080')\n"
              "assert (before, tcp, transport.aiohttp is not None) == (False, False, True), (before, tcp)")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_nats_url_lists_its_servers() -> None:
    assert servers(" nats://a:4222, nats://b:4222 ,,") == ["nats://a:4222", "nats://b:4222"]
    assert servers("tls://hub:4222") == ["tls://hub:4222"]
