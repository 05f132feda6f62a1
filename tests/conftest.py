"""Shared fixtures: a NATS server per test module, and real services on real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import nats
import pytest
from nats.js.errors import NotFoundError

from shared import subjects
from shared.embedded_nats import EmbeddedNats
from shared.health_view import forget_states
from tests.support.redis import EXTERNAL_REDIS_ENV

# Fixtures that a module in tests/integration and one in tests/chaos share (the chaos half kills
# processes); a plugin, so their users need not import fixture names.
pytest_plugins = ["tests.support.health_stack", "tests.support.secured_stack"]
_STATE_HOME = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    """A user's REDIS_URL is for the tests that ask for Redis (tests/support/redis.py), not for
    every service a test spawns: a shared Redis would carry cache entries from earlier runs."""
    external = os.environ.pop("REDIS_URL", None)
    if external:
        os.environ[EXTERNAL_REDIS_ENV] = external
    # Every `aiub up` a test starts records its state dir in $XDG_STATE_HOME/aiub/current
    # (cli/stack_dir.py): a private one, so no test stack becomes the user's "running stack" and
    # the user's own stack is never the one a test's `aiub status` finds.
    config.stash[_STATE_HOME] = os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="aiub-test-state-")
    os.environ.pop("AIUB_STATE_DIR", None)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _STATE_HOME in config.stash:
        shutil.rmtree(config.stash[_STATE_HOME], ignore_errors=True)


async def _forget_health_state(url: str) -> None:
    nc = await nats.connect(url)
    try:
        await forget_states(nc.jetstream())
        with contextlib.suppress(NotFoundError):  # a previous module's config revisions too
            await nc.jetstream().delete_key_value(subjects.CONFIG_BUCKET)
    finally:
        await nc.close()


@pytest.fixture(scope="module")
def nats_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A private nats-server (JetStream on) per module, so stacks never share subjects.

    With NATS_URL set, that server is used instead, and the health state a previous module
    left in it is removed first."""
    external = os.environ.get("NATS_URL")
    if external:
        asyncio.run(_forget_health_state(external))
        yield external
        return
    server = EmbeddedNats(Path(tmp_path_factory.mktemp("nats"))).start()
    try:
        yield server.url
    finally:
        server.stop()
