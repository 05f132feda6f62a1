"""The dashboard's config editor writes nothing unless the whole directory validates."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from cli.dashboard import config_edit
from cli.dashboard.main import metrics_url, resolve
from shared.config import ConfigError

PROVIDERS = yaml.safe_dump({"providers": {"ollama": {"type": "ollama", "base_url": "http://127.0.0.1:11434"}}})
MAPPINGS = yaml.safe_dump({"exact_matches": {"llama3.1:8b": {"provider": "ollama"}}})


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    (tmp_path / "providers.yaml").write_text(PROVIDERS)
    (tmp_path / "model-mappings.yaml").write_text(MAPPINGS)
    (tmp_path / "providers.yaml").chmod(0o644)
    return tmp_path


def test_a_cross_file_error_is_caught_and_names_the_real_file(directory: Path) -> None:
    bad = yaml.safe_dump({"providers": {"vllm": {"type": "vllm", "base_url": "http://127.0.0.1:8001"}}})
    problem = config_edit.validate(directory, {"providers.yaml": bad})
    assert problem is not None and "unknown provider 'ollama'" in problem
    assert str(directory / "model-mappings.yaml") in problem
    with pytest.raises(ConfigError):
        config_edit.save(directory, {"providers.yaml": bad})
    assert (directory / "providers.yaml").read_text() == PROVIDERS


def test_unknown_keys_and_broken_yaml_are_refused(directory: Path) -> None:
    assert "unknown key" in (config_edit.validate(directory, {"aiub.yaml": "deadlines: {acepted_s: 1}\n"}) or "")
    assert "not valid YAML" in (config_edit.validate(directory, {"providers.yaml": "providers: [\n"}) or "")
    assert not (directory / "aiub.yaml").exists()


def test_a_valid_edit_replaces_only_the_changed_file_and_keeps_its_mode(directory: Path) -> None:
    edited = config_edit.read_files(directory)
    assert edited["aiub.yaml"] == ""
    edited["providers.yaml"] = PROVIDERS.replace("11434", "11435")
    assert config_edit.save(directory, edited) == ["providers.yaml"]
    assert "11435" in (directory / "providers.yaml").read_text()
    assert stat.S_IMODE((directory / "providers.yaml").stat().st_mode) == 0o644
    assert not (directory / "aiub.yaml").exists()  # untouched, still absent
    assert sorted(p.name for p in directory.iterdir()) == ["model-mappings.yaml", "providers.yaml"]
    assert config_edit.save(directory, edited) == []


def test_dashboard_finds_the_stack_from_flags_then_stack_json_then_env(tmp_path: Path) -> None:
    assert resolve(None, None, tmp_path, "nats://env:4222") == ("nats://env:4222", [])
    assert resolve(None, None, tmp_path, None) == (None, [])  # no stack found: never a default URL
    assert resolve(None, None, None, None) == (None, [])
    (tmp_path / "stack.json").write_text(json.dumps({"nats_url": "nats://stack:1", "metrics": {
        "router": "http://127.0.0.1:9101/metrics", "gateway": "http://127.0.0.1:4000/metrics"}}))
    assert resolve(None, None, tmp_path, "nats://env:4222") == (
        "nats://stack:1", ["http://127.0.0.1:9101/metrics", "http://127.0.0.1:4000/metrics"])
    assert resolve("nats://flag:2", ["127.0.0.1:9999"], tmp_path, "nats://env:4222") == (
        "nats://flag:2", ["http://127.0.0.1:9999/metrics"])
    (tmp_path / "stack.json").write_text("{not json")
    assert resolve(None, None, tmp_path, "nats://env:4222") == ("nats://env:4222", [])


@pytest.mark.parametrize(("given", "expected"), [
    ("127.0.0.1:9100", "http://127.0.0.1:9100/metrics"),
    ("http://h:1", "http://h:1/metrics"),
    ("http://h:1/custom", "http://h:1/custom"),
])
def test_metrics_url_shorthand(given: str, expected: str) -> None:
    assert metrics_url(given) == expected
