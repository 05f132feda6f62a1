"""Provider state across stacks: `aiub up` on its own NATS starts fresh, and `aiub status` says
when it finds none."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

import nats
import pytest

from cli import status
from cli.up.stack import forget_provider_states
from shared.config import Environment
from shared.health_view import open_bucket
from shared.messages import ProviderState, encode


async def _keys(url: str) -> list[str]:
    nc = await nats.connect(url)
    try:
        kv = await open_bucket(nc.jetstream())
        try:
            return list(await kv.keys())
        except Exception:  # nats-py raises NoKeysError for an empty bucket
            return []
    finally:
        await nc.close()


async def _open_a_circuit(url: str) -> None:
    nc = await nats.connect(url)
    try:
        kv = await open_bucket(nc.jetstream())
        await kv.put("ollama", encode(ProviderState(provider="ollama", state="unavailable", open_until=4e9,
                                                    reason="probe failed: ConnectError")))
    finally:
        await nc.close()


def test_a_previous_runs_open_circuit_is_forgotten(nats_url: str) -> None:
    asyncio.run(_open_a_circuit(nats_url))
    assert asyncio.run(_keys(nats_url)) == ["ollama"]
    forget_provider_states(nats_url)
    assert asyncio.run(_keys(nats_url)) == []
    forget_provider_states(nats_url)  # nothing to forget is fine too


def test_status_without_any_state_fails(nats_url: str, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    asyncio.run(_open_a_circuit(nats_url))
    assert status.main(argparse.Namespace(nats=nats_url, state_dir=str(tmp_path), json=False), Environment()) == 0
    forget_provider_states(nats_url)
    capsys.readouterr()
    assert status.main(argparse.Namespace(nats=nats_url, state_dir=str(tmp_path), json=False), Environment()) == 1
    assert "no health state" in capsys.readouterr().out
