"""The examples a newcomer copies, run as copied against `aiub up --demo`: the README's shell
and Python snippets and the NATS client in docs/architecture.md. Only the port changes."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.up import AiubUp

ROOT = Path(__file__).resolve().parents[2]


def _blocks(path: Path, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", path.read_text(), flags=re.MULTILINE | re.DOTALL)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AiubUp]:
    up = AiubUp(tmp_path_factory.mktemp("readme"), ROOT / "config", "--demo", embedded_nats=True)
    try:
        up.wait_up()
        yield up
    finally:
        up.stop()


def _as_copied(snippet: str, up: AiubUp) -> str:
    return snippet.replace("localhost:4000", f"localhost:{up.port}")


def test_the_readme_curl_examples_answer_and_the_stream_ends_with_done(demo: AiubUp) -> None:
    (use,) = [block for block in _blocks(ROOT / "README.md", "sh") if "curl" in block]
    commands = [c for c in _as_copied(use, demo).replace("\\\n", " ").splitlines() if c.strip()]
    assert len(commands) == 3
    plain = subprocess.run(commands[0], shell=True, capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(plain.stdout)["choices"][0]["message"]["content"]
    streamed = subprocess.run(commands[1], shell=True, capture_output=True, text=True, check=True, timeout=60)
    events = [line for line in streamed.stdout.splitlines() if line.startswith("data: ")]
    assert events[-1] == "data: [DONE]" and len(events) > 2
    assert not any('"error"' in event for event in events)
    embedded = subprocess.run(commands[2], shell=True, capture_output=True, text=True, check=True, timeout=60)
    vector = json.loads(embedded.stdout)["data"][0]["embedding"]
    assert len(vector) > 1 and all(isinstance(x, float) for x in vector)


def test_the_readme_python_example_prints_the_answers_and_no_stray_none(demo: AiubUp) -> None:
    snippet = _blocks(ROOT / "README.md", "python")[0]
    ran = subprocess.run([sys.executable, "-c", _as_copied(snippet, demo)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[0].strip() and "None" not in ran.stdout
    assert re.fullmatch(r"\d+ tokens", lines[-1]), ran.stdout


def test_the_readme_other_clients_example_answers_through_every_front_door(demo: AiubUp) -> None:
    (snippet,) = [block for block in _blocks(ROOT / "README.md", "python") if "import anthropic" in block]
    ran = subprocess.run([sys.executable, "-c", _as_copied(snippet, demo)], capture_output=True, text=True,
                         timeout=60, check=False)
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert len(lines) == 4 and all(line.strip() for line in lines), ran.stdout
    assert "None" not in ran.stdout


def test_the_nats_example_finds_the_stack_and_prints_text(demo: AiubUp, tmp_path: Path) -> None:
    (snippet,) = _blocks(ROOT / "docs" / "architecture.md", "python")
    (tmp_path / ".aiub").symlink_to(demo.state_dir)  # run where `./dev up` ran, as the example expects
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "NATS_URL": "nats://127.0.0.1:1"}  # a wrong one
    ran = subprocess.run([sys.executable, "-c", snippet], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=60, check=False)
    assert ran.returncode == 0, ran.stderr
    text, tokens = ran.stdout.splitlines()
    assert "Chunk(" not in text and "msgspec.Raw" not in text and "error" not in text
    assert text.strip() and re.fullmatch(r"\[\d+ tokens\]", tokens), ran.stdout
