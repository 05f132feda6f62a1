"""A real Redis for tests: `REDIS_URL` if set, else a private `redis-server` on a free port (no
persistence, its own temp dir), else a testcontainers Redis if Docker runs, else a skip that
says why. A private server can be stopped and started again on the same port, for tests of
what happens while Redis is down.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from shared.embedded_nats import free_port, wait_for_port
from shared.processes import die_with_parent, stop_process


class RedisServer:
    def __init__(self, url: str, directory: Path | None = None, port: int | None = None) -> None:
        self.url = url
        self._directory = directory
        self._port = port
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def restartable(self) -> bool:
        return self._directory is not None

    def start(self) -> RedisServer:
        assert self._directory is not None and self._port is not None
        binary = shutil.which("redis-server")
        assert binary is not None
        with (self._directory / "redis.log").open("ab") as log:
            self._process = subprocess.Popen(
                [binary, "--port", str(self._port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self._directory)],
                stdout=log, stderr=log, stdin=subprocess.DEVNULL, preexec_fn=die_with_parent)
        wait_for_port("127.0.0.1", self._port, 10, self._process)
        return self

    def stop(self) -> None:
        if self._process is not None:
            stop_process(self._process, 5)


# tests/conftest.py moves a user's REDIS_URL here at start: services a test spawns then never
# share that Redis (and its leftovers from earlier runs) unless the test hands it to them.
EXTERNAL_REDIS_ENV = "AIUB_TEST_REDIS_URL"


@contextmanager
def redis_server(directory: Path) -> Iterator[RedisServer]:
    external = os.environ.get(EXTERNAL_REDIS_ENV)
    if external:
        yield RedisServer(external)
        return
    if shutil.which("redis-server"):
        port = free_port()
        server = RedisServer(f"redis://127.0.0.1:{port}/0", directory, port).start()
        try:
            yield server
        finally:
            server.stop()
        return
    container: Any = None
    try:
        from testcontainers.redis import RedisContainer

        container = RedisContainer("redis:7-alpine").start()
    except Exception as e:
        pytest.skip(f"no Redis: REDIS_URL is unset, redis-server is not on PATH, and Docker failed ({e!r})")
    try:
        host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
        yield RedisServer(f"redis://{host}:{port}/0")
    finally:
        container.stop()
