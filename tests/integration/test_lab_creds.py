"""`aiub creds init` makes a lab whose NATS refuses everyone without valid credentials.

One hub node on loopback, configured as `aiub hub` configures it (TLS from the lab's CA, the
users of deploy/nats/auth.conf with the generated passwords): a client without a password, with
a wrong one, or without trusting the CA cannot connect at all, so it can neither publish nor
subscribe; a service's own user can do only what its permissions say.
"""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import nats
import pytest
from nats.aio.msg import Msg
from nats.errors import NoServersError

from cli.up.roles import AUTH_CONF, load_lab
from shared.embedded_nats import EmbeddedNats, free_port
from shared.lab import node_config, urls
from tests.support.processes import wait_until_async


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str], Path]]:
    root = tmp_path_factory.mktemp("lab")
    subprocess.run([sys.executable, "-m", "cli", "creds", "init", str(root / "lab"), "--hub", "hub1=127.0.0.1"],
                   check=True, capture_output=True)
    lab, passwords, lab_dir = load_lab(str(root / "lab"))
    lab = msgspec.structs.replace(lab, client_port=free_port(), monitor_port=free_port())
    extra = node_config(lab, "hub1", passwords, AUTH_CONF.read_text(), cert=str(lab_dir / "hub1" / "server.pem"),
                        key=str(lab_dir / "hub1" / "server-key.pem"), ca=str(lab_dir / "ca.pem"))
    server = EmbeddedNats(root / "nats", port=lab.client_port, extra_config=extra).start()
    try:
        yield f"127.0.0.1:{lab.client_port}", passwords, lab_dir
    finally:
        server.stop()


def _tls(lab_dir: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(lab_dir / "ca.pem"))


async def _connect(url: str, lab_dir: Path) -> nats.NATS:
    return await nats.connect(url, tls=_tls(lab_dir), connect_timeout=2, max_reconnect_attempts=0,
                              allow_reconnect=False)


def test_the_lab_directory_keeps_secrets_private_and_gives_gpu_hosts_only_the_workers(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "cli", "creds", "init", str(tmp_path / "lab"), "--hub", "a=10.0.0.1",
                    "--hub", "b=10.0.0.2", "--hub", "c=10.0.0.3"], check=True, capture_output=True)
    lab = tmp_path / "lab"
    for secret in ("secrets.json", "ca-key.pem", "a/server-key.pem", "gpu/secrets.json"):
        assert (lab / secret).stat().st_mode & 0o077 == 0, secret
    assert set(json.loads((lab / "gpu" / "secrets.json").read_text())) == {"worker", "bus_secret"}
    assert not (lab / "gpu" / "ca-key.pem").exists()
    again = subprocess.run([sys.executable, "-m", "cli", "creds", "init", str(lab), "--hub", "a=10.0.0.1"],
                           capture_output=True, text=True)
    assert again.returncode == 2 and "--force" in again.stderr


# A refused TLS or plain connection may leave nats-py's half-open transport to the collector.
REFUSALS = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@REFUSALS
@pytest.mark.parametrize("userinfo", ["", "worker:wrong@", "nobody:nothing@"])
async def test_without_valid_credentials_nothing_connects(hub: tuple[str, dict[str, str], Path],
                                                          userinfo: str) -> None:
    address, _, lab_dir = hub
    with pytest.raises((NoServersError, nats.errors.Error, OSError)):
        nc = await _connect(f"tls://{userinfo}{address}", lab_dir)
        await nc.close()


@REFUSALS
async def test_without_trusting_the_lab_ca_nothing_connects(hub: tuple[str, dict[str, str], Path]) -> None:
    address, passwords, _ = hub
    with pytest.raises((NoServersError, nats.errors.Error, OSError)):
        nc = await nats.connect(f"tls://worker:{passwords['worker']}@{address}", connect_timeout=2,
                                max_reconnect_attempts=0, allow_reconnect=False)
        await nc.close()


@REFUSALS
async def test_plain_tcp_is_refused(hub: tuple[str, dict[str, str], Path]) -> None:
    address, passwords, _ = hub
    with pytest.raises((NoServersError, nats.errors.Error, OSError)):
        nc = await nats.connect(f"nats://worker:{passwords['worker']}@{address}", connect_timeout=2,
                                max_reconnect_attempts=0, allow_reconnect=False)
        await nc.close()


async def test_a_worker_may_serve_but_not_ask(hub: tuple[str, dict[str, str], Path]) -> None:
    """The worker user subscribes to work and may not publish requests (which skip the gateway)."""
    address, passwords, lab_dir = hub
    errors: list[str] = []

    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    worker = await nats.connect(f"tls://worker:{passwords['worker']}@{address}", tls=_tls(lab_dir),
                                error_cb=on_error, inbox_prefix="_INBOX.worker")
    router = await _connect(f"tls://router:{passwords['router']}@{address}", lab_dir)
    try:
        got: list[bytes] = []

        async def received(msg: Msg) -> None:
            got.append(msg.data)

        await router.subscribe("aiub.requests", cb=received)
        await worker.subscribe("aiub.work.gpu1")
        await worker.publish("aiub.requests", b"{}")
        await worker.flush()
        # The server refuses the publish and then says so; anything it had forwarded would reach
        # the router before the router's own flush returns.
        await wait_until_async(lambda: any("permissions violation" in e.lower() for e in errors), 10,
                               f"the server to refuse the publish (errors so far: {errors})")
        await router.flush()
        assert got == []
    finally:
        await worker.close()
        await router.close()


def test_every_service_url_names_its_own_user(hub: tuple[str, dict[str, str], Path]) -> None:
    _, passwords, lab_dir = hub
    lab, _, _ = load_lab(str(lab_dir))
    assert urls(lab, "router", passwords["router"]).startswith(f"tls://router:{passwords['router']}@127.0.0.1:")
