"""`aiub validate`: every error class, all at once, each naming the file, the key path and a fix."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from cli.import_litellm import run_import
from cli.validate.checks import Problem, has_errors, validate_directory, validate_litellm
from cli.validate.command import run_validate
from shared.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[2]

PROVIDERS = {"providers": {
    "ollama": {"type": "ollama", "base_url": "http://127.0.0.1:11434",
               "models": {"llama3.1:8b": {"context_window": 8192}, "qwen": {"context_window": 32768}}},
    "vllm": {"type": "vllm", "base_url": "http://127.0.0.1:8001", "models": {"qwen": {"context_window": 32768}}},
}}
MAPPINGS = {"exact_matches": {"llama3.1:8b": {"provider": "ollama"}, "qwen": {"provider": "vllm"}},
            "fallback_chains": {"qwen": ["vllm", "ollama"]},
            "context_window_fallbacks": {"llama3.1:8b": ["qwen"]}}


def texts(providers: Any = PROVIDERS, mappings: Any = MAPPINGS, runtime: Any = None) -> dict[str, str | None]:
    def dump(doc: Any) -> str | None:
        return doc if isinstance(doc, str) or doc is None else yaml.safe_dump(doc, sort_keys=False)

    return {"providers.yaml": dump(providers), "model-mappings.yaml": dump(mappings), "aiub.yaml": dump(runtime)}


def check(environ: dict[str, str] | None = None, **docs: Any) -> list[Problem]:
    return validate_directory(texts(**docs), environ or {}, "cfg")


def at(problems: list[Problem], path: str, severity: str = "error") -> list[Problem]:
    return [p for p in problems if p.path == path and p.severity == severity]


def with_provider(name: str, **entry: Any) -> dict[str, Any]:
    return {"providers": {**PROVIDERS["providers"], name: entry}}


def test_a_good_config_has_no_problems() -> None:
    assert check() == []


def test_the_shipped_config_and_litellm_example_have_no_errors() -> None:
    config = ROOT / "config"
    shipped = {name: (config / name).read_text() if (config / name).exists() else None
               for name in ("providers.yaml", "model-mappings.yaml", "aiub.yaml")}
    assert not has_errors(validate_directory(shipped, {}, str(config)))
    example = validate_litellm((config / "litellm-unified.yaml").read_text(), "litellm-unified.yaml", {})
    assert not has_errors(example)
    assert any(p.path == "litellm_settings.drop_params" for p in example)  # notes surface as warnings


def test_every_problem_names_file_path_and_fix() -> None:
    problems = check(providers="providers:\n  ollama: {type: ollama, base_url: http://h:1, base_ur: x}\n",
                     mappings={"exact_matches": {"m": {"provider": "olama"}}})
    assert problems
    for p in problems:
        assert p.file.startswith("cfg/") and p.path and p.message and p.fix
        assert str(p).startswith(f"{p.severity}: {p.file}: {p.path}: ")


def test_yaml_syntax_errors_give_the_line() -> None:
    (problem,) = check(mappings="exact_matches:\n  a: {provider: ollama\n")
    assert problem.file == "cfg/model-mappings.yaml"
    assert problem.path.startswith("line ")
    assert "not valid YAML" in problem.message


def test_a_control_character_is_a_problem_at_its_line_not_a_traceback() -> None:
    (problem,) = check(mappings="exact_matches: {}\n# a comment\nx: \x00\n")
    assert (problem.file, problem.path) == ("cfg/model-mappings.yaml", "line 3")
    assert "#x0000" in problem.message


def test_a_file_that_is_not_utf8_is_named_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "providers.yaml").write_text(texts()["providers.yaml"] or "")
    (tmp_path / "model-mappings.yaml").write_bytes(b"exact_matches: {}\n# caf\xe9\n")
    out = io.StringIO()
    assert run_validate(str(tmp_path), {}, out=out) == 2
    assert f"{tmp_path / 'model-mappings.yaml'}: line 2: not UTF-8 text (byte 0xe9)" in out.getvalue()



def test_a_syntax_error_in_providers_is_the_one_problem_reported_at_the_broken_line() -> None:
    # A key missing its ':' (line 4). Read as empty, the file used to make every mapping's provider
    # "unknown": one error per mapping, the syntax error lost among them.
    broken = yaml.safe_dump(PROVIDERS, sort_keys=False).replace("base_url:", "base_url", 1)
    assert broken.splitlines()[3].strip().startswith("base_url http")
    (problem,) = check(providers=broken)
    assert (problem.file, problem.path) == ("cfg/providers.yaml", "line 4, column 5")
    assert "could not find expected ':'" in problem.message and "noticed at line 5" in problem.message


def test_syntax_errors_in_two_files_are_both_reported_and_nothing_else() -> None:
    problems = check(providers="providers: [\n", mappings="exact_matches:\n  a: {provider: nope\n")
    assert [p.file for p in problems] == ["cfg/providers.yaml", "cfg/model-mappings.yaml"]
    assert all("not valid YAML" in p.message for p in problems)

def test_a_duplicate_key_is_an_error_not_a_silent_overwrite() -> None:
    problems = check(mappings="exact_matches:\n  qwen: {provider: vllm}\n  qwen: {provider: ollama}\n")
    (dup,) = at(problems, "line 3")
    assert "already appears on line 2" in dup.message


def test_missing_files_and_unset_variables() -> None:
    problems = validate_directory({"providers.yaml": None, "model-mappings.yaml": "{}"}, {}, "cfg")
    assert at(problems, "(file)")[0].file == "cfg/providers.yaml"
    x = with_provider("x", type="vllm", base_url="${X_URL}", models=["m"])
    (unset,) = at(check(providers=x), "providers.x.base_url")  # not also "must start with http://"
    assert "X_URL is not set" in unset.message
    assert check({"X_URL": "http://x:1"}, providers=x) == []


def test_unknown_keys_suggest_the_right_one_and_list_what_is_allowed() -> None:
    problems = check(providers=with_provider("x", type="vllm", base_url="http://x:1", max_concurency=4))
    (problem,) = at(problems, "providers.x.max_concurency")
    assert "did you mean 'max_concurrency'?" in problem.fix
    (nested,) = at(check(providers=with_provider("x", type="vllm", base_url="http://x:1",
                                                 health={"interval": 5})), "providers.x.health.interval")
    assert "interval_s" in nested.fix
    (top,) = at(check(mappings={**MAPPINGS, "fallback_chain": {}}), "fallback_chain")
    assert "fallback_chains" in top.fix


def test_wrong_values_say_what_is_expected() -> None:
    problems = check(providers=with_provider("x", type="tgi", base_url="localhost:1", max_concurrency=0))
    assert "one of" in at(problems, "providers.x.type")[0].fix
    assert "http://" in at(problems, "providers.x.base_url")[0].fix
    assert "above 0" in at(problems, "providers.x.max_concurrency")[0].fix or \
        "at least 1" in at(problems, "providers.x.max_concurrency")[0].fix


def test_unknown_providers_anywhere_in_the_mappings() -> None:
    problems = check(mappings={
        "exact_matches": {"llama3.1:8b": {"provider": "olama"}, "qwen": {"provider": "vllm"}},
        "patterns": [{"pattern": "*:*", "provider": "nope"}],
        "capabilities": {"code": {"providers": ["vllm", "ghost"]}},
        "fallback_chains": {"qwen": ["vllm", "llama_cpp"]},
        "load_balancing": {"lb": {"providers": ["ollama", "gone"]}},
        "default_provider": "missing"})
    for path in ("exact_matches.llama3.1:8b.provider", "patterns[0]", "capabilities.code.providers",
                 "fallback_chains.qwen", "load_balancing.lb", "default_provider"):
        assert at(problems, path), path
    assert "did you mean 'ollama'?" in at(problems, "exact_matches.llama3.1:8b.provider")[0].fix


def test_the_loader_and_validate_name_the_same_unknown_references(tmp_path: Path) -> None:
    mappings = {"exact_matches": {"m": {"provider": "olama"}},
                "patterns": [{"pattern": "*:*", "provider": "nope"}],
                "capabilities": {"code": {"providers": ["vllm", "ghost"]}},
                "fallback_chains": {"qwen": ["vllm", "llama_cpp"]},
                "load_balancing": {"lb": {"providers": ["ollama", "gone"], "weights": {"olama": 2}}},
                "default_provider": "missing"}
    reported = {p.path for p in check(mappings=mappings) if p.message.startswith("unknown provider")}
    for name, text in texts(mappings=mappings).items():
        if text is not None:
            (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError) as refused:
        load_config(tmp_path)
    refused_paths = {line.split(": ")[1] for line in str(refused.value).splitlines()}
    assert refused_paths == reported
    assert "load_balancing.lb.weights.olama" in reported


def test_the_route_preview_takes_a_capability_alias_as_the_router_does() -> None:
    # `*:*` matches "capability:poetry", but the router takes the alias first and has no such capability.
    problems = check(mappings={**MAPPINGS, "patterns": [{"pattern": "*:*", "provider": "ollama"}],
                               "capabilities": {"code": {"providers": ["vllm"]}},
                               "fallback_chains": {**MAPPINGS["fallback_chains"], "capability:poetry": ["ollama"],
                                                   "capability:code": ["vllm"]}})
    assert "routes nowhere" in at(problems, "fallback_chains.capability:poetry")[0].message
    assert not at(problems, "fallback_chains.capability:code")


def test_a_bad_provider_entry_is_reported_once_without_a_cascade_of_unknown_references() -> None:
    problems = check(providers=with_provider("broken", type="ollama"), mappings={
        **MAPPINGS, "exact_matches": {**MAPPINGS["exact_matches"], "b": {"provider": "broken"}}})
    assert [p.path for p in problems if p.severity == "error"] == ["providers.broken.base_url"]


def test_all_problems_are_reported_at_once_across_files() -> None:
    problems = check(
        providers=with_provider("x", type="vllm", base_url="http://x:99999", requires_api_key=True, extra=1),
        mappings={**MAPPINGS, "default_provider": "nobody", "patterns": [{"pattern": "a*"}]},
        runtime={"deadlines": {"accepted_s": -1}})
    files = {p.file for p in problems if p.severity == "error"}
    assert files == {"cfg/providers.yaml", "cfg/model-mappings.yaml", "cfg/aiub.yaml"}
    paths = {p.path for p in problems if p.severity == "error"}
    # The provider entry with an unknown key is still checked for its port and its API key variable.
    assert {"providers.x.extra", "providers.x.base_url", "providers.x.env_var", "default_provider", "patterns[0]",
            "deadlines.accepted_s"} <= paths


def test_disabled_providers_in_mappings_are_warnings() -> None:
    providers = {"providers": {**PROVIDERS["providers"], "vllm": {**PROVIDERS["providers"]["vllm"],
                                                                  "status": "disabled"}}}
    problems = check(providers=providers)
    assert at(problems, "exact_matches.qwen.provider", "warning")
    assert not has_errors(problems)


def test_every_model_a_mapping_names_must_route_somewhere() -> None:
    problems = check(mappings={**MAPPINGS, "fallback_chains": {"ghost-model": ["ollama"]},
                               "context_window_fallbacks": {"llama3.1:8b": ["bigger"]}})
    assert "routes nowhere" in at(problems, "fallback_chains.ghost-model")[0].message
    assert "'bigger' routes nowhere" in at(problems, "context_window_fallbacks.llama3.1:8b")[0].message


def test_a_provider_that_lists_a_model_it_never_serves_is_a_warning() -> None:
    problems = check(mappings={**MAPPINGS, "fallback_chains": {}})
    (problem,) = at(problems, "providers.ollama.models.qwen", "warning")
    assert "exact_matches.qwen sends 'qwen' to vllm" in problem.message
    exact = at(check(mappings={**MAPPINGS, "exact_matches": {**MAPPINGS["exact_matches"],
                                                             "other": {"provider": "ollama"}}}),
               "exact_matches.other", "warning")
    assert "does not list 'other'" in exact[0].message


def test_fallback_chains_may_not_loop() -> None:
    problems = check(mappings={**MAPPINGS, "fallback_chains": {"qwen": ["vllm", "ollama", "vllm"]}})
    assert "appears twice" in at(problems, "fallback_chains.qwen")[0].message


def test_context_window_fallbacks_detect_cycles_self_loops_and_smaller_windows() -> None:
    problems = check(mappings={**MAPPINGS, "context_window_fallbacks": {
        "llama3.1:8b": ["qwen"], "qwen": ["llama3.1:8b", "qwen"]}})
    cycles = [p for p in problems if "cycle" in p.message]
    assert len(cycles) == 1
    assert "llama3.1:8b → qwen → llama3.1:8b" in cycles[0].message
    assert "fall back to itself" in at(problems, "context_window_fallbacks.qwen")[0].message
    assert any("not larger" in p.message for p in at(problems, "context_window_fallbacks.qwen", "warning"))


def test_api_key_variables() -> None:
    cloud = with_provider("anthropic", type="anthropic", base_url="https://api.anthropic.com/v1",
                          requires_api_key=True, env_var="ANTHROPIC_API_KEY", models=["claude"])
    (unset,) = at(check(providers=cloud), "providers.anthropic.env_var", "warning")
    assert "ANTHROPIC_API_KEY is not set" in unset.message
    assert check({"ANTHROPIC_API_KEY": "sk-x"}, providers=cloud) == []
    unnamed = with_provider("openai", type="openai", base_url="https://api.openai.com/v1", requires_api_key=True,
                            models=["gpt-4o"])
    assert "OPENAI_API_KEY" in at(check(providers=unnamed), "providers.openai.env_var")[0].fix
    keyless = with_provider("openai", type="openai", base_url="https://api.openai.com/v1", models=["gpt-4o"])
    assert at(check(providers=keyless), "providers.openai", "warning")


@pytest.mark.parametrize(("url", "message"), [
    ("http://host:99999", "port"), ("http://host:http", "port"), ("http://:8000", "no host"),
])
def test_urls_and_ports_must_parse(url: str, message: str) -> None:
    problems = check(providers=with_provider("x", type="vllm", base_url=url, models=["m"]))
    assert message in at(problems, "providers.x.base_url")[0].message


def test_environment_urls_must_parse() -> None:
    good = {"NATS_URL": "nats://a:4222,nats://b:4222", "REDIS_URL": "redis://:pw@redis:6379/0"}
    assert check(good) == []
    problems = check({"NATS_URL": "http://nats:4222", "REDIS_URL": "redis://redis:port"})
    assert at(problems, "NATS_URL")[0].file == "environment"
    assert at(problems, "REDIS_URL")


def test_a_broken_litellm_config_names_its_entry() -> None:
    problems = validate_litellm("model_list:\n  - model_name: m\n    litellm_params: {}\n", "l.yaml", {})
    assert [(p.path, p.severity) for p in problems] == [("model_list[0].litellm_params.model", "error")]
    assert validate_litellm("foo: 1\n", "l.yaml", {})[0].message.startswith("not a LiteLLM")


def write(directory: Path, docs: dict[str, str | None]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        if text is not None:
            (directory / name).write_text(text)
    return directory


def test_the_command_exits_non_zero_on_errors_only(tmp_path: Path) -> None:
    out = io.StringIO()
    assert run_validate(str(write(tmp_path / "good", texts())), {}, out) == 0
    assert "0 errors, 0 warnings" in out.getvalue()
    out = io.StringIO()
    bad = write(tmp_path / "bad", texts(mappings={"exact_matches": {"m": {"provider": "nope"}}}))
    assert run_validate(str(bad), {}, out) == 1
    assert f"error: {bad}/model-mappings.yaml: exact_matches.m.provider: unknown provider 'nope'" in out.getvalue()
    assert run_validate(str(tmp_path / "absent"), {}, io.StringIO()) == 2


@pytest.mark.parametrize("command", [["up", "--demo"], ["router"], ["worker", "--provider", "ollama"]])
def test_a_command_that_cannot_load_its_config_prints_what_validate_prints_and_exits_2(
        tmp_path: Path, command: list[str]) -> None:
    """Every problem with its fix, as `aiub validate` lists them; the loader alone stops at the first."""
    bad = write(tmp_path / "bad", texts(providers=with_provider("x", type="vllm", base_url="http://h:1",
                                                                     max_concurency=2),
                                        mappings={"exact_matches": {"m": {"provider": "nope"}}}))
    validated = io.StringIO()
    assert run_validate(str(bad), {}, validated) == 1
    env = {k: v for k, v in os.environ.items() if k not in ("AIUB_CONFIG", "NATS_URL")}
    ran = subprocess.run([sys.executable, "-m", "cli", *command, "--config", str(bad)], env=env,
                         capture_output=True, text=True, timeout=60, check=False)
    assert ran.returncode == 2, ran.stderr
    assert ran.stderr.splitlines()[0] == f"aiub {command[0]}: the config does not load; `aiub validate` says:"
    assert ran.stderr.splitlines()[1:] == validated.getvalue().splitlines()
    assert "2 errors" in ran.stderr and "did you mean 'max_concurrency'" in ran.stderr


def test_import_litellm_writes_files_that_validate_and_never_overwrites_silently(tmp_path: Path) -> None:
    out = io.StringIO()
    target = tmp_path / "imported"
    assert run_import(str(ROOT / "config" / "litellm-unified.yaml"), str(target), False, out) == 0
    assert {p.name for p in target.iterdir()} == {"providers.yaml", "model-mappings.yaml", "aiub.yaml"}
    assert "&id" not in (target / "providers.yaml").read_text()
    assert "drop_params" in (target / "providers.yaml").read_text()  # the notes head the file
    checked = io.StringIO()
    assert run_validate(str(target), {"ANTHROPIC_API_KEY": "k", "OLLAMA_API_KEY": "k"}, checked) == 0
    counts = re.search(r"(\d+ providers, \d+ models)", checked.getvalue())
    assert counts and counts.group(1) in out.getvalue()  # both commands count models alike
    again = io.StringIO()
    assert run_import(str(ROOT / "config" / "litellm-unified.yaml"), str(target), False, again) == 2
    assert "--force" in again.getvalue()


# -- hedging and backend load ------------------------------------------------------------------------
POOLED = {"providers": {
    "a": {"type": "vllm", "base_url": "http://a:8000", "load_endpoint": "/metrics", "models": ["m"]},
    "b": {"type": "vllm", "base_url": "http://b:8000", "models": ["m"]},
    "paid": {"type": "openai", "base_url": "https://api.openai.com/v1", "requires_api_key": True,
             "env_var": "OPENAI_API_KEY", "models": {"m": {"cost_per_1k_tokens": 0.5}}},
}}
KEY = {"OPENAI_API_KEY": "sk-x"}


def pooled(hedging: Any, providers: tuple[str, ...] = ("a", "b"), strategy: str = "round_robin") -> dict[str, Any]:
    return {"load_balancing": {"m": {"providers": list(providers), "strategy": strategy}},
            "exact_matches": {"solo": {"provider": "a"}}, "hedging": hedging}


def test_good_hedging_settings_have_no_problems() -> None:
    for hedging in ({"m": {"after_ms": 300, "max_fraction": 0.05}}, {"m": {"after_ms": "auto"}}):
        problems = check(KEY, providers=POOLED, mappings=pooled(hedging))
        assert [p for p in problems if p.path.startswith("hedging")] == [], problems


def test_hedging_values_are_checked_with_their_key_path() -> None:
    problems = check(KEY, providers=POOLED, mappings=pooled({"m": {"after_ms": "soon", "max_fraction": 2,
                                                                   "afer": 1}}))
    paths = {p.path for p in problems if p.severity == "error"}
    assert {"hedging.m.after_ms", "hedging.m.max_fraction", "hedging.m.afer"} <= paths, problems


def test_hedging_a_model_that_routes_nowhere_is_an_error() -> None:
    (problem,) = at(check(KEY, providers=POOLED, mappings=pooled({"nope": {}})), "hedging.nope")
    assert "routes nowhere" in problem.message


def test_hedging_with_nowhere_to_go_or_that_pays_is_a_warning() -> None:
    (solo,) = at(check(KEY, providers=POOLED, mappings=pooled({"solo": {}})), "hedging.solo", "warning")
    assert "nowhere else" in solo.message
    paying = check(KEY, providers=POOLED, mappings=pooled({"m": {"allow_paid": True}}, ("a", "b", "paid")))
    (pays,) = at(paying, "hedging.m.allow_paid", "warning")
    assert "paid" in pays.message and not has_errors(paying)
    (never,) = at(check(KEY, providers=POOLED, mappings=pooled({"m": {}}, ("a", "paid"))), "hedging.m", "warning")
    assert "no request is ever hedged" in never.message


def test_a_backend_load_pool_without_load_endpoints_is_a_warning() -> None:
    for strategy in ("backend_load", "prefix_affinity"):
        problems = check(KEY, providers=POOLED, mappings=pooled({}, strategy=strategy))
        (problem,) = at(problems, "load_balancing.m.strategy", "warning")
        assert "'b'" not in problem.message and "b (no load_endpoint)" in problem.message
    assert at(check(KEY, providers=POOLED, mappings=pooled({}, strategy="least_loaded")),
              "load_balancing.m.strategy", "warning") == []
