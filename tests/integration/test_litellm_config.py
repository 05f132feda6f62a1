"""The shipped LiteLLM proxy config runs unchanged: `aiub up --config config/litellm-unified.yaml`.

`--demo` points its local backends at simulators, so the same file a LiteLLM user runs serves
requests here, under the LiteLLM model names, with every unsupported setting named on startup.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import wait_until
from tests.support.up import AiubUp

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def litellm_stack(tmp_path_factory: pytest.TempPathFactory, nats_url: str) -> Iterator[tuple[str, Path]]:
    stack = AiubUp(tmp_path_factory.mktemp("litellm"), ROOT / "config" / "litellm-unified.yaml", "--demo",
                   "--nats", nats_url)
    try:
        stack.wait_up()
        yield stack.url, stack.out
    finally:
        stack.stop()


@pytest.mark.parametrize("model", ["llama3.1:8b", "qwen-coder", "llama-cpp-native", "dolphin-mistral"])
def test_litellm_model_names_are_served(litellm_stack: tuple[str, Path], model: str) -> None:
    url, log = litellm_stack
    answers: list[httpx.Response] = []

    def answered() -> bool:
        answers.append(httpx.post(url + "/v1/chat/completions", timeout=10, trust_env=False, json={
            "model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 3}))
        return answers[-1].status_code == 200

    wait_until(answered, 20, f"a 200 for {model}", interval_s=0.25)
    assert answers[-1].json()["choices"][0]["message"]["content"], log.read_text()[-2000:]


def test_every_setting_not_imported_is_named_on_startup(litellm_stack: tuple[str, Path]) -> None:
    _, log = litellm_stack
    text = log.read_text()
    for path in ("litellm_settings.drop_params", "litellm_settings.cache_params", "general_settings.master_key",
                 "model_list[2].litellm_params.api_key"):
        assert f"aiub: LiteLLM config: {path}" in text, path


def test_the_demo_starts_no_worker_for_what_it_does_not_simulate_and_says_what_that_serves(
        litellm_stack: tuple[str, Path]) -> None:
    """The cloud providers the demo leaves out: no worker, not in /v1/models, 503 'disabled', as
    `aiub validate` says of the config the demo serves (it used to start their workers, and
    validate on the user's file predicted a 502 provider_auth_missing instead)."""
    url, log = litellm_stack
    wait_until(lambda: "Ctrl-C stops everything." in log.read_text(), 20, "the child listing")
    text = log.read_text()
    assert "worker-anthropic" not in text and "worker-ollama_cloud" not in text
    (summary,) = [line for line in text.splitlines() if line.startswith("demo: ")]
    assert "disabled (not simulated): anthropic, ollama_cloud" in summary
    listed = {m["id"] for m in httpx.get(url + "/v1/models", timeout=10, trust_env=False).json()["data"]}
    assert "llama3.1:8b" in listed and "claude-3-sonnet" not in listed
    refused = httpx.post(url + "/v1/chat/completions", timeout=10, trust_env=False, json={
        "model": "claude-3-sonnet", "messages": [{"role": "user", "content": "hi"}]})
    assert refused.status_code == 503 and "anthropic (disabled)" in refused.json()["error"]["message"]
    demo_dir = summary.split("aiub validate --config ")[1].split("`")[0]
    validated = subprocess.run([sys.executable, "-m", "cli", "validate", "--config", demo_dir],
                               capture_output=True, text=True, timeout=60, check=False)
    assert "provider 'anthropic' is disabled" in validated.stdout, validated.stdout
