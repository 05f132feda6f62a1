from pathlib import Path

import pytest
import yaml

from shared.config import Config, ConfigError, ModelMappingsFile, RuntimeFile, load_config
from shared.config.documents import parse_yaml

SHIPPED = Path(__file__).resolve().parents[2] / "config"


def write(root: Path, providers: str, mappings: str = "{}\n", runtime: str | None = None) -> Path:
    (root / "providers.yaml").write_text(providers)
    (root / "model-mappings.yaml").write_text(mappings)
    if runtime is not None:
        (root / "aiub.yaml").write_text(runtime)
    return root


def test_shipped_config_loads_and_maps_public_to_backend_names() -> None:
    config = load_config(SHIPPED)
    assert {"ollama", "llama_cpp_python", "llama_cpp_native", "vllm"} <= set(config.providers)
    assert config.providers["vllm"].backend_model("qwen-coder") == "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"
    assert config.providers["ollama"].base_url.endswith(":11434")
    assert config.providers["ollama"].probe_path == "/api/tags"
    assert "llama3.1:8b" in config.public_models()


def test_unknown_key_names_file_and_path(tmp_path: Path) -> None:
    write(tmp_path, "providers:\n  vllm:\n    type: vllm\n    base_url: http://x\n    max_concurency: 3\n")
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path)
    message = str(caught.value)
    assert "providers.yaml" in message
    assert "providers.vllm.max_concurency" in message
    assert "unknown key" in message


def test_wrong_type_names_the_key(tmp_path: Path) -> None:
    write(tmp_path, "providers:\n  vllm: {type: nope, base_url: 'http://x'}\n")
    with pytest.raises(ConfigError, match=r"providers\.vllm\.type"):
        load_config(tmp_path)


def test_provider_key_must_be_a_subject_token(tmp_path: Path) -> None:
    write(tmp_path, "providers:\n  'a.b': {type: vllm, base_url: 'http://x'}\n")
    with pytest.raises(ConfigError, match="may not contain"):
        load_config(tmp_path)


def test_mapping_to_an_unknown_provider_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "providers:\n  vllm: {type: vllm, base_url: 'http://x'}\n",
          "exact_matches:\n  m: {provider: olama}\n")
    expected = r"model-mappings\.yaml: exact_matches\.m\.provider: unknown provider 'olama'"
    with pytest.raises(ConfigError, match=expected):
        load_config(tmp_path)


def test_a_weight_for_an_unknown_provider_is_refused(tmp_path: Path) -> None:
    # A typo here used to leave the real provider at weight 1 without a word.
    write(tmp_path, "providers:\n  vllm: {type: vllm, base_url: 'http://x'}\n",
          "load_balancing:\n  m: {providers: [vllm], weights: {vlm: 3}}\n")
    expected = r"model-mappings\.yaml: load_balancing\.m\.weights\.vlm: unknown provider 'vlm'"
    with pytest.raises(ConfigError, match=expected):
        load_config(tmp_path)


def test_environment_references_expand_and_missing_ones_are_named(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "providers:\n  v: {type: vllm, base_url: '${V_URL:-http://fallback:1}'}\n")
    assert load_config(tmp_path).providers["v"].base_url == "http://fallback:1"
    monkeypatch.setenv("V_URL", "http://set:2")
    assert load_config(tmp_path).providers["v"].base_url == "http://set:2"
    write(tmp_path, "providers:\n  v: {type: vllm, base_url: '${NOT_SET_ANYWHERE}'}\n")
    with pytest.raises(ConfigError, match="NOT_SET_ANYWHERE"):
        load_config(tmp_path)


def test_bad_yaml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path)
    write(tmp_path, "providers: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path)


def test_yaml_parses_as_pyyaml_does_and_an_error_quotes_its_line() -> None:
    """libyaml parses (fast); an error is told by the pure-Python parser, with the line and a caret."""
    for name in ("providers.yaml", "model-mappings.yaml", "aiub.yaml"):
        text = (SHIPPED / name).read_text()
        assert parse_yaml(text) == yaml.safe_load(text) == parse_yaml(text.encode())
    with pytest.raises(yaml.YAMLError) as error:
        parse_yaml("providers:\n  a: b: c\n")
    assert "a: b: c" in str(error.value) and "^" in str(error.value)
    for tabbed in ("retry_budget:\t3\n", "{b:\t1}\n", "a\t: 1\n"):  # libyaml takes these; `aiub validate` not
        with pytest.raises(yaml.YAMLError):
            parse_yaml(tabbed)


def test_runtime_deadlines_are_configurable(tmp_path: Path) -> None:
    write(tmp_path, "providers: {}\n", runtime="deadlines: {accepted_s: 0.5, idle_s: 3}\n")
    deadlines = load_config(tmp_path).runtime.deadlines
    assert (deadlines.accepted_s, deadlines.idle_s, deadlines.first_token_s) == (0.5, 3, 60)


def test_an_api_key_pasted_with_its_line_end_is_stripped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "providers:\n  o: {type: openai, base_url: 'https://x/v1', env_var: O_KEY}\n")
    monkeypatch.setenv("O_KEY", "sk-test\r\n")
    assert load_config(tmp_path).providers["o"].api_key() == "sk-test"
    monkeypatch.setenv("O_KEY", " \n")
    assert load_config(tmp_path).providers["o"].api_key() is None


def test_a_reference_error_in_a_litellm_config_names_that_file(tmp_path: Path) -> None:
    # The LiteLLM loader builds its Config on the file itself: there is no model-mappings.yaml beside it.
    litellm = tmp_path / "litellm.yaml"
    litellm.write_text("model_list: []\n")
    with pytest.raises(ConfigError) as caught:
        Config(directory=litellm, providers={}, mappings=ModelMappingsFile(default_provider="ghost"),
               runtime=RuntimeFile())
    assert str(caught.value) == f"{litellm}: default_provider: unknown provider 'ghost' (known: )"


def test_the_secrets_a_config_names_are_read_once_by_the_loader(tmp_path: Path) -> None:
    write(tmp_path, "providers:\n  o: {type: openai, base_url: 'https://x/v1', env_var: O_KEY}\n"
          "  v: {type: vllm, base_url: 'http://v:1'}\n")
    environ = {"O_KEY": "sk-o", "REDIS_URL": "redis://r:6379/0", "AIUB_MASTER_KEY": "m" * 16, "AIUB_BUS_SECRET": "s"}
    config = load_config(tmp_path, environ)
    environ.clear()  # read at load, never again
    assert (config.providers["o"].api_key(), config.providers["v"].api_key()) == ("sk-o", None)
    assert config.runtime.redis.url() == "redis://r:6379/0"
    assert (config.runtime.auth.master_key(), config.runtime.auth.bus_secret()) == ("m" * 16, b"s")
    assert "sk-o" not in repr(config)  # held, not shown
    unset = load_config(tmp_path, {})
    assert (unset.providers["o"].api_key(), unset.runtime.redis.url(), unset.runtime.auth.master_key(),
            unset.runtime.auth.bus_secret()) == (None, None, None, None)
