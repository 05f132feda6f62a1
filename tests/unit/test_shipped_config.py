"""The shipped config/aiub.yaml: every line commented out, and each one the real default."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from shared.config import RuntimeFile, load_config

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "aiub.yaml"


def test_the_shipped_runtime_file_changes_nothing() -> None:
    assert load_config(SHIPPED.parent).runtime == RuntimeFile()


def test_every_commented_setting_is_the_default_and_the_loader_accepts_it() -> None:
    uncommented = re.sub(r"^# ?(?=[a-z ]+[a-z_]+:)", "", SHIPPED.read_text(), flags=re.MULTILINE)
    settings = yaml.safe_load(uncommented)
    assert set(settings) == set(RuntimeFile.model_fields)
    assert RuntimeFile.model_validate(settings) == RuntimeFile()
