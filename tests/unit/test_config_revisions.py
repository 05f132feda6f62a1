"""Config revisions (shared/config/revisions.py): records, diffs, and what a service does with one."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import Config, ConfigError, load_config, load_texts
from shared.config.revisions import (
    FILES,
    Apply,
    Ignore,
    Keep,
    Revision,
    decide,
    diff,
    encode,
    next_revision,
    number_of_key,
    push_notes,
    restart_needed,
    revision_decoder,
    revision_key,
    same_files,
)

SHIPPED = Path(__file__).resolve().parents[2] / "config"
PROVIDERS = """providers:
  a:
    type: openai_compatible
    base_url: ${A_URL:-http://127.0.0.1:9001}
    max_concurrency: 4
    models: {m: {}}
  b:
    type: openai_compatible
    base_url: http://127.0.0.1:9002
    models: {m: {}}
"""
MAPPINGS = "exact_matches:\n  m: {provider: a}\n"


def files(providers: str = PROVIDERS, mappings: str = MAPPINGS, runtime: str | None = None) -> dict[str, str]:
    out = {"providers.yaml": providers, "model-mappings.yaml": mappings}
    return out if runtime is None else {**out, "aiub.yaml": runtime}


def load(texts: dict[str, str], environ: dict[str, str] | None = None) -> Config:
    return load_texts(texts, "rev", environ or {})


def revision(number: int, texts: dict[str, str]) -> Revision:
    return Revision(number=number, files=texts, pushed_at=1000.0 + number, source="test")


def test_load_texts_is_load_config_of_the_same_files(tmp_path: Path) -> None:
    texts = {name: (SHIPPED / name).read_text() for name in FILES if (SHIPPED / name).exists()}
    environ = {"AIUB_MASTER_KEY": "k" * 20}
    from_texts, from_files = load_texts(texts, SHIPPED, environ), load_config(SHIPPED, environ)
    assert from_texts == from_files
    assert from_texts.runtime.auth.master_key() == "k" * 20


def test_load_texts_expands_variables_with_the_environment_it_is_given() -> None:
    assert load(files(), {"A_URL": "http://gpu-1:8000"}).providers["a"].base_url == "http://gpu-1:8000"
    assert load(files()).providers["a"].base_url == "http://127.0.0.1:9001"


def test_load_texts_errors_name_the_revision_file_and_key() -> None:
    with pytest.raises(ConfigError, match=r"rev/providers.yaml: providers.a.max_concurency: unknown key"):
        load(files(PROVIDERS.replace("max_concurrency", "max_concurency")))
    with pytest.raises(ConfigError, match=r"rev/model-mappings.yaml: file not found"):
        load({"providers.yaml": PROVIDERS})


def test_revisions_number_on_and_keep_only_config_files() -> None:
    first = next_revision(None, {**files(), "notes.txt": "x"}, 5.0, "aiub up")
    assert (first.number, set(first.files), first.source) == (1, {"providers.yaml", "model-mappings.yaml"}, "aiub up")
    second = next_revision(first, files(runtime="{}\n"), 6.0, "push")
    assert second.number == 2 and "aiub.yaml" in second.files
    assert revision_decoder.decode(encode(second)) == second
    assert number_of_key(revision_key(12)) == 12 and number_of_key("current") is None
    assert number_of_key("rev.x") is None


def test_same_files_is_what_a_repeated_push_finds() -> None:
    first = next_revision(None, files(), 5.0, "aiub up")
    assert same_files(first, files())
    assert not same_files(first, files(runtime="{}\n"))
    assert not same_files(None, files())


def test_diff_is_unified_per_file_and_empty_for_equal_texts() -> None:
    old = revision(1, files())
    new = revision(2, files(mappings="exact_matches:\n  m: {provider: b}\n", runtime="deadlines: {total_s: 30}\n"))
    text = diff(old, new)
    assert "--- rev 1/model-mappings.yaml\n+++ rev 2/model-mappings.yaml\n" in text
    assert "-  m: {provider: a}\n+  m: {provider: b}\n" in text
    assert "--- /dev/null\n+++ rev 2/aiub.yaml\n" in text
    assert "providers.yaml" not in text
    assert diff(old, revision(3, files())) == ""


def test_a_newer_revision_that_loads_is_applied() -> None:
    running = load(files())
    new = revision(2, files(mappings="exact_matches:\n  m: {provider: b}\n"))
    decision = decide("router", running, 1, new, load(new.files))
    assert isinstance(decision, Apply) and decision.number == 2
    assert decision.config.mappings.exact_matches["m"].provider == "b"
    assert decision.restart_needed == ()


def test_a_revision_not_newer_is_ignored() -> None:
    running = load(files())
    assert decide("router", running, 3, revision(3, files()), running) == Ignore(3)
    assert decide("router", running, 3, revision(2, files()), running) == Ignore(2)


def test_a_revision_that_does_not_load_here_is_refused_and_says_why() -> None:
    decision = decide("gateway", load(files()), 1, revision(2, files()), ConfigError("x.yaml: a: bad"))
    assert decision == Keep(2, "revision 2 does not load here: x.yaml: a: bad")


def test_a_worker_keeps_its_revision_when_its_provider_is_gone() -> None:
    only_b = files(PROVIDERS.split("  b:")[0].replace("  a:", "  c:"), "exact_matches:\n  m: {provider: c}\n")
    new = revision(2, only_b)
    decision = decide("worker", load(files()), 1, new, load(only_b), served=["a"])
    assert isinstance(decision, Keep) and "this worker serves a (--provider)" in decision.reason
    assert isinstance(decide("router", load(files()), 1, new, load(only_b)), Apply)
    assert isinstance(decide("worker", load(files()), 1, new, load(only_b), served=["c"]), Apply)


def test_restart_needed_names_what_each_service_reads_only_at_start() -> None:
    old = load(files())
    new = load(files(PROVIDERS.replace("max_concurrency: 4", "max_concurrency: 8"),
                     runtime="gateway: {cors_origins: ['http://x']}\nlimits: {max_headers: 50}\n"
                             "worker: {load_report_s: 2}\ndeadlines: {total_s: 30}\n"
                             "cache: {model_ttl_s: {m: 0}}\n"))
    assert set(restart_needed("gateway", old, new)) == {"runtime.gateway.cors_origins", "runtime.limits.max_headers"}
    assert set(restart_needed("worker", old, new, ["a"])) == {"runtime.worker.load_report_s",
                                                            "providers.a.max_concurrency"}
    assert restart_needed("worker", old, new, ["b"]) == ("runtime.worker.load_report_s",)
    assert restart_needed("router", old, new) == ()
    assert restart_needed("health", old, new) == ()


def test_restart_needed_sees_a_changed_secret_setting() -> None:
    old = load(files())
    new = load(files(runtime="auth: {master_key_env: OTHER_KEY}\n"))
    assert restart_needed("gateway", old, new) == ("runtime.auth",)


def test_push_notes_name_removed_and_new_providers() -> None:
    old = load(files())
    new = load(files(PROVIDERS.replace("  b:", "  c:")))
    assert push_notes(old, new) == [
        "providers.b: removed; a worker serving it keeps running the current revision until stopped",
        "providers.c: new; start a worker for it (aiub worker --provider c)"]
    assert push_notes(None, new) == []
