"""The Ollama front door's pure translation: requests to OpenAI bodies, answers and streams back."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from services.gateway.dialects import ollama_models
from services.gateway.dialects.ollama_request import Endpoint, parse
from services.gateway.dialects.ollama_response import Timings, embed_body, generation_body, load_body
from services.gateway.dialects.ollama_stream import OllamaStream
from shared.config import load_config
from shared.errors import BadRequest, ModelNotFound, UpstreamError

PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk"
JPEG = "/9j/4AAQSkZJRgABAQAAAQABAAD"
AT = "2026-01-01T00:00:00Z"


def request(endpoint: Endpoint, body: dict[str, Any], names: tuple[str, ...] = ()) -> Any:
    return parse(endpoint, json.dumps(body).encode(), names)


def refused(endpoint: Endpoint, body: dict[str, Any] | bytes) -> BadRequest:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    with pytest.raises(BadRequest) as caught:
        parse(endpoint, raw)
    return caught.value


def lines(raw: list[bytes]) -> list[dict[str, Any]]:
    assert all(line.endswith(b"\n") and line.count(b"\n") == 1 for line in raw)
    return [json.loads(line) for line in raw]


# --------------------------------------------------------------------------------------------- requests
def test_chat_streams_unless_told_not_to_and_asks_for_usage() -> None:
    parsed = request("chat", {"model": "llama3.1:8b", "messages": [{"role": "user", "content": "Hi"}]})
    assert (parsed.kind, parsed.model, parsed.stream, parsed.load) == ("chat", "llama3.1:8b", True, None)
    assert parsed.body == {"model": "llama3.1:8b", "stream": True, "stream_options": {"include_usage": True},
                           "messages": [{"role": "user", "content": "Hi"}]}
    whole = request("chat", {"model": "m", "stream": False, "messages": [{"role": "user", "content": "Hi"}]})
    assert whole.stream is False and "stream_options" not in whole.body


def test_options_map_by_the_shared_table_and_the_rest_stay_options() -> None:
    body = request("chat", {"model": "m", "messages": [{"role": "user", "content": "x"}], "options": {
        "temperature": 0.2, "top_p": 0.9, "top_k": 40, "seed": 7, "num_predict": 12, "stop": ["\n"],
        "repeat_penalty": 1.1, "num_ctx": 8192, "mirostat": 1, "min_p": None}}).body
    assert (body["temperature"], body["top_p"], body["top_k"], body["seed"]) == (0.2, 0.9, 40, 7)
    assert (body["max_tokens"], body["stop"], body["repeat_penalty"]) == (12, ["\n"], 1.1)
    assert body["options"] == {"num_ctx": 8192, "mirostat": 1}
    assert "min_p" not in body


@pytest.mark.parametrize("num_predict", [-1, -2, 0])
def test_num_predict_of_zero_or_less_means_no_cap(num_predict: int) -> None:
    body = request("chat", {"model": "m", "messages": [{"role": "user", "content": "x"}],
                            "options": {"num_predict": num_predict}}).body
    assert "max_tokens" not in body and "options" not in body


@pytest.mark.parametrize(("options", "param"), [
    ({"temperature": "hot"}, "options.temperature"),
    ({"seed": 1.5}, "options.seed"),
    ({"top_k": True}, "options.top_k"),
    ({"num_predict": "10"}, "options.num_predict"),
    ({"stop": [1]}, "options.stop"),
    ("fast", "options"),
])
def test_a_bad_option_is_a_400_naming_it(options: object, param: str) -> None:
    error = refused("chat", {"model": "m", "messages": [{"role": "user", "content": "x"}], "options": options})
    assert error.status == 400 and error.param == param


def test_format_becomes_response_format() -> None:
    def fmt(value: object) -> Any:
        return request("generate", {"model": "m", "prompt": "x", "format": value}).body.get("response_format")

    schema = {"type": "object", "properties": {"age": {"type": "integer"}}}
    assert fmt("json") == {"type": "json_object"}
    assert fmt(schema) == {"type": "json_schema", "json_schema": {"name": "response", "schema": schema}}
    assert fmt("") is None
    assert refused("chat", {"model": "m", "messages": [{"role": "user", "content": "x"}], "format": "yaml"}).param \
        == "format"


def test_keep_alive_and_think_pass_through() -> None:
    body = request("chat", {"model": "m", "messages": [{"role": "user", "content": "x"}], "keep_alive": "10m",
                            "think": True}).body
    assert (body["keep_alive"], body["think"]) == ("10m", True)


def test_images_become_data_url_parts_with_their_media_type() -> None:
    message = request("chat", {"model": "m", "messages": [
        {"role": "user", "content": "What is this?", "images": [PNG, JPEG]}]}).body["messages"][0]
    assert message["content"] == [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}},
        {"type": "image_url", "image_url": {"url": f"data:image/jpeg;base64,{JPEG}"}}]
    assert refused("chat", {"model": "m", "messages": [{"role": "user", "content": "x", "images": [1]}]}).param \
        == "messages[0].images"


def test_a_tool_call_and_its_result_round_trip_into_openai_shape() -> None:
    body = request("chat", {"model": "m", "tools": [{"type": "function", "function": {"name": "weather"}}],
                            "messages": [
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "time", "arguments": {}}},
            {"function": {"index": 1, "name": "weather", "arguments": {"city": "Paris"}}}]},
        {"role": "tool", "tool_name": "weather", "content": "sunny"},
        {"role": "tool", "content": "noon"}]}).body
    assistant, weather, time = body["messages"][1:]
    assert assistant["content"] is None
    calls = assistant["tool_calls"]
    assert [(c["type"], c["function"]["name"], json.loads(c["function"]["arguments"])) for c in calls] == [
        ("function", "time", {}), ("function", "weather", {"city": "Paris"})]
    assert weather == {"role": "tool", "content": "sunny", "tool_call_id": calls[1]["id"]}
    assert time["tool_call_id"] == calls[0]["id"] != calls[1]["id"]
    assert body["tools"] == [{"type": "function", "function": {"name": "weather"}}]


def test_a_client_tool_call_id_is_kept_and_answered_by_id() -> None:
    body = request("chat", {"model": "m", "messages": [
        {"role": "assistant", "tool_calls": [{"id": "call_9", "function": {"name": "f", "arguments": {"a": 1}}}]},
        {"role": "tool", "tool_call_id": "call_9", "content": "ok"}]}).body
    assert body["messages"][0]["tool_calls"][0]["id"] == "call_9"
    assert body["messages"][1]["tool_call_id"] == "call_9"


def test_tool_call_arguments_must_be_an_object() -> None:
    error = refused("chat", {"model": "m", "messages": [
        {"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}]})
    assert error.param == "messages[0].tool_calls[0].function.arguments"


def test_generate_is_a_chat_turn_with_its_system_and_images() -> None:
    parsed = request("generate", {"model": "m", "prompt": "Why?", "system": "Be brief", "images": [PNG],
                                  "stream": False, "options": {"num_predict": 5}})
    assert (parsed.endpoint, parsed.kind, parsed.stream) == ("generate", "chat", False)
    assert parsed.body["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": [{"type": "text", "text": "Why?"}, {
            "type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]}]
    assert parsed.body["max_tokens"] == 5


def test_raw_or_suffix_generate_is_a_plain_completion_without_images() -> None:
    raw = request("generate", {"model": "m", "prompt": "[INST] hi [/INST]", "raw": True})
    assert raw.kind == "completion" and raw.body["prompt"] == "[INST] hi [/INST]" and "messages" not in raw.body
    fim = request("generate", {"model": "m", "prompt": "def f(", "suffix": "    return x"})
    assert fim.kind == "completion" and fim.body["suffix"] == "    return x"
    assert refused("generate", {"model": "m", "prompt": "x", "raw": True, "images": [PNG]}).param == "images"


@pytest.mark.parametrize(("endpoint", "body", "load"), [
    ("chat", {"model": "m", "messages": []}, "load"),
    ("chat", {"model": "m"}, "load"),
    ("chat", {"model": "m", "messages": [], "keep_alive": 0}, "unload"),
    ("generate", {"model": "m"}, "load"),
    ("generate", {"model": "m", "prompt": "", "keep_alive": "0s"}, "unload"),
    ("generate", {"model": "m", "keep_alive": "5m"}, "load"),
    ("embed", {"model": "m", "input": []}, "load"),
    ("embeddings", {"model": "m", "prompt": ""}, "load"),
])
def test_nothing_to_generate_only_loads(endpoint: Endpoint, body: dict[str, Any], load: str) -> None:
    parsed = request(endpoint, body)
    assert parsed.load == load and parsed.stream is False


def test_embed_takes_a_string_or_strings_and_the_legacy_prompt() -> None:
    one = request("embed", {"model": "e", "input": "sky", "truncate": True, "dimensions": 8})
    assert one.kind == "embedding" and one.body == {"model": "e", "input": ["sky"], "dimensions": 8, "truncate": True}
    assert request("embed", {"model": "e", "input": ["a", "b"]}).body["input"] == ["a", "b"]
    assert request("embeddings", {"model": "e", "prompt": "llamas"}).body["input"] == ["llamas"]
    assert refused("embed", {"model": "e", "input": [1, 2]}).param == "input"


def test_model_is_required_and_a_latest_tag_finds_the_untagged_name() -> None:
    assert refused("chat", {"messages": []}).message == "model is required"
    assert refused("chat", {"model": "  ", "messages": []}).param == "model"
    tagged = request("chat", {"model": "qwen-coder:latest", "messages": [{"role": "user", "content": "x"}]},
                     names=("qwen-coder",))
    assert tagged.model == "qwen-coder:latest" and tagged.body["model"] == "qwen-coder"
    kept = request("chat", {"model": "llama3:latest", "messages": [{"role": "user", "content": "x"}]},
                   names=("llama3:latest", "llama3"))
    assert kept.body["model"] == "llama3:latest"


@pytest.mark.parametrize(("body", "param"), [
    (b"{not json", None),
    (b"[1]", "body"),
    (json.dumps({"model": "m", "stream": "yes", "messages": [{"role": "user"}]}).encode(), "stream"),
    (json.dumps({"model": "m", "messages": "hi"}).encode(), "messages"),
    (json.dumps({"model": "m", "messages": [{"content": "x"}]}).encode(), "messages[0]"),
    (json.dumps({"model": "m", "messages": [{"role": "user", "content": ["x"]}]}).encode(), "messages[0].content"),
])
def test_a_bad_body_is_a_400(body: bytes, param: str | None) -> None:
    assert refused("chat", body).param == param


# --------------------------------------------------------------------------------------------- whole answers
def test_a_chat_completion_becomes_an_ollama_chat_answer() -> None:
    completion = {"object": "chat.completion", "model": "m", "choices": [{"index": 0, "finish_reason": "tool_calls",
                  "message": {"role": "assistant", "content": None, "reasoning_content": "Paris, so weather.",
                              "tool_calls": [{"id": "call_1", "type": "function", "function": {
                                  "name": "weather", "arguments": "{\"city\": \"Paris\"}"}}]}}],
                  "usage": {"prompt_tokens": 9, "completion_tokens": 4}}
    body = generation_body("chat", json.dumps(completion).encode(), "llama3.1:8b", AT, Timings(total_ns=5_000))
    assert body["message"] == {"role": "assistant", "content": "", "thinking": "Paris, so weather.", "tool_calls": [
        {"id": "call_1", "function": {"index": 0, "name": "weather", "arguments": {"city": "Paris"}}}]}
    assert (body["model"], body["created_at"], body["done"], body["done_reason"]) == ("llama3.1:8b", AT, True, "stop")
    assert (body["prompt_eval_count"], body["eval_count"]) == (9, 4)
    assert (body["total_duration"], body["load_duration"], body["prompt_eval_duration"], body["eval_duration"]) \
        == (5_000, 0, 0, 5_000)


def test_the_frame_counts_win_and_length_stays_length() -> None:
    completion = {"choices": [{"finish_reason": "length", "message": {"role": "assistant", "content": "tok0 "}}]}
    body = generation_body("chat", json.dumps(completion).encode(), "m", AT, Timings(100, first_token_ns=30), 3, 1)
    assert body["done_reason"] == "length" and body["message"] == {"role": "assistant", "content": "tok0 "}
    assert (body["prompt_eval_count"], body["eval_count"], body["prompt_eval_duration"], body["eval_duration"]) \
        == (3, 1, 30, 70)


def test_generate_answers_from_a_chat_or_a_text_completion() -> None:
    chat = json.dumps({"choices": [{"finish_reason": "stop", "message": {"content": "Blue.", "reasoning": "Rayleigh"}}]
                       }).encode()
    text = json.dumps({"choices": [{"finish_reason": "stop", "text": "  return 1"}]}).encode()
    assert generation_body("generate", chat, "m", AT, Timings(1))["response"] == "Blue."
    assert generation_body("generate", chat, "m", AT, Timings(1))["thinking"] == "Rayleigh"
    assert generation_body("generate", text, "m", AT, Timings(1))["response"] == "  return 1"
    assert "message" not in generation_body("generate", text, "m", AT, Timings(1))


def test_tool_call_arguments_that_are_not_an_object_are_the_backends_fault() -> None:
    completion = {"choices": [{"message": {"tool_calls": [{"function": {"name": "f", "arguments": "[1"}}]}}]}
    with pytest.raises(UpstreamError):
        generation_body("chat", json.dumps(completion).encode(), "m", AT, Timings(1))


def test_embeddings_in_index_order_and_the_legacy_single_vector() -> None:
    listed = json.dumps({"data": [{"index": 1, "embedding": [0.3]}, {"index": 0, "embedding": [0.1, 0.2]}],
                         "usage": {"prompt_tokens": 2}}).encode()
    assert embed_body("embed", listed, "e", Timings(7)) == {
        "model": "e", "embeddings": [[0.1, 0.2], [0.3]], "total_duration": 7, "load_duration": 0,
        "prompt_eval_count": 2}
    assert embed_body("embeddings", listed, "e", Timings(7)) == {"embedding": [0.1, 0.2]}


def test_load_answers() -> None:
    assert load_body("chat", "m", AT, "load") == {"model": "m", "created_at": AT, "done": True, "done_reason": "load",
                                                   "message": {"role": "assistant", "content": ""}}
    assert load_body("generate", "m", AT, "unload")["done_reason"] == "unload"
    assert load_body("embed", "m", AT, "load") == {"model": "m", "embeddings": []}
    assert load_body("embeddings", "m", AT, "load") == {"embedding": []}


# --------------------------------------------------------------------------------------------- streams
def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return json.dumps({"object": "chat.completion.chunk", "model": "m",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).encode()


def test_a_chat_stream_is_ndjson_ending_in_the_done_line() -> None:
    stream = OllamaStream("chat", "llama3.1:8b", started_ns=1_000)
    out = stream.feed(chunk({"role": "assistant", "content": ""}), 1_100, AT)
    out += stream.feed(chunk({"reasoning_content": "hmm"}), 1_200, AT)
    out += stream.feed(chunk({"content": "tok0 "}), 1_300, AT)
    out += stream.feed(chunk({"content": "tok1 "}), 1_400, AT)
    out += stream.feed(chunk({}, "stop"), 1_500, AT)
    out += stream.feed(json.dumps({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2}}).encode(),
                       1_600, AT)
    out += stream.done(0, 0, 2_000, AT)
    parsed = lines(out)
    assert [p["message"] for p in parsed[:-1]] == [
        {"role": "assistant", "content": "", "thinking": "hmm"},
        {"role": "assistant", "content": "tok0 "}, {"role": "assistant", "content": "tok1 "}]
    assert all(p["done"] is False and p["model"] == "llama3.1:8b" and p["created_at"] == AT for p in parsed[:-1])
    last = parsed[-1]
    assert last["done"] is True and last["done_reason"] == "stop" and last["message"]["content"] == ""
    assert (last["prompt_eval_count"], last["eval_count"]) == (5, 2)  # from the usage chunk: the frame said 0
    assert (last["total_duration"], last["prompt_eval_duration"], last["eval_duration"]) == (1_000, 200, 800)
    assert stream.finished and stream.done(1, 1, 3_000, AT) == [] and stream.feed(chunk({"content": "x"}), 0, AT) == []


def test_streamed_tool_call_pieces_go_out_whole_with_object_arguments() -> None:
    stream = OllamaStream("chat", "m", 0)
    out = stream.feed(chunk({"tool_calls": [{"index": 0, "id": "call_a", "type": "function",
                                             "function": {"name": "weather", "arguments": ""}}]}), 1, AT)
    out += stream.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}), 2, AT)
    out += stream.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}), 3, AT)
    assert out == []
    out += stream.feed(chunk({}, "tool_calls"), 4, AT)
    out += stream.done(3, 7, 5, AT)
    calls, last = lines(out)
    assert calls["message"]["tool_calls"] == [
        {"id": "call_a", "function": {"index": 0, "name": "weather", "arguments": {"city": "Paris"}}}]
    assert calls["done"] is False
    assert last["done_reason"] == "stop" and (last["prompt_eval_count"], last["eval_count"]) == (3, 7)


def test_tool_calls_without_a_finish_reason_go_out_before_the_done_line() -> None:
    stream = OllamaStream("chat", "m", 0)
    stream.feed(chunk({"tool_calls": [{"index": 0, "function": {"name": "f", "arguments": "{}"}}]}), 1, AT)
    calls, last = lines(stream.done(1, 1, 2, AT))
    assert calls["message"]["tool_calls"][0]["function"] == {"index": 0, "name": "f", "arguments": {}}
    assert last["done"] is True


def test_a_generate_stream_says_response_and_reads_text_completion_chunks() -> None:
    stream = OllamaStream("generate", "m", 0)
    out = stream.feed(chunk({"content": "Blue", "reasoning_content": "why"}), 1, AT)
    out += stream.feed(json.dumps({"object": "text_completion", "choices": [{"text": " sky", "finish_reason": None}]})
                       .encode(), 2, AT)
    out += stream.feed(json.dumps({"choices": [{"text": "", "finish_reason": "length"}]}).encode(), 3, AT)
    out += stream.done(1, 2, 4, AT)
    first, second, last = lines(out)
    assert (first["response"], first["thinking"], second["response"]) == ("Blue", "why", " sky")
    assert "message" not in first and last["response"] == "" and last["done_reason"] == "length"


def test_a_failure_mid_stream_is_one_error_line_and_the_end() -> None:
    stream = OllamaStream("chat", "m", 0)
    stream.feed(chunk({"content": "tok0 "}), 1, AT)
    assert stream.error("the backend broke off") == b'{"error":"the backend broke off"}\n'
    assert stream.finished and stream.done(1, 1, 2, AT) == []


def test_an_unreadable_chunk_is_the_backends_fault() -> None:
    with pytest.raises(UpstreamError):
        OllamaStream("chat", "m", 0).feed(b"{nope", 1, AT)


# --------------------------------------------------------------------------------------------- model endpoints
@pytest.fixture
def config(tmp_path: Path) -> Any:
    (tmp_path / "providers.yaml").write_text(yaml.safe_dump({"providers": {
        "ollama": {"type": "ollama", "base_url": "http://h:11434", "models": {
            "llama3.1:8b": {"context_window": 8192, "capabilities": ["chat", "vision"]}}},
        "vllm": {"type": "vllm", "base_url": "http://h:8000", "models": {
            "qwen-coder": {"backend_model": "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ", "capabilities": ["reasoning"]},
            "embedder": {"capabilities": ["embeddings"]}}}}}))
    (tmp_path / "model-mappings.yaml").write_text(yaml.safe_dump({"exact_matches": {
        "qwen-coder": {"provider": "vllm"}}}))
    return load_config(tmp_path)


def test_tags_list_the_configured_names_as_configured(config: Any) -> None:
    models = json.loads(ollama_models.tags_body(config, AT))["models"]
    assert [m["name"] for m in models] == ["qwen-coder", "llama3.1:8b", "embedder"]
    first = models[0]
    assert first["model"] == "qwen-coder" and first["modified_at"] == AT and first["size"] == 0
    assert len(first["digest"]) == 64 and first["details"]["format"] == "vllm"
    assert set(first["details"]) == {"parent_model", "format", "family", "families", "parameter_size",
                                     "quantization_level"}


def test_tags_leave_out_a_model_whose_every_route_ends_at_a_disabled_provider(tmp_path: Path) -> None:
    """As /v1/models: an Ollama UI offers what /api/tags lists, and a disabled provider answers 503."""
    (tmp_path / "providers.yaml").write_text(yaml.safe_dump({"providers": {
        "ollama": {"type": "ollama", "base_url": "http://h:11434", "models": ["llama3.1:8b"]},
        "openai": {"type": "openai", "base_url": "https://api.openai.com/v1", "status": "disabled",
                   "models": ["gpt-4o-mini"]}}}))
    (tmp_path / "model-mappings.yaml").write_text(yaml.safe_dump({"exact_matches": {
        "gpt-4o-mini": {"provider": "openai"}}}))
    models = json.loads(ollama_models.tags_body(load_config(tmp_path), AT))["models"]
    assert [m["name"] for m in models] == ["llama3.1:8b"]


def test_show_reports_capabilities_and_context_length(config: Any) -> None:
    llama = json.loads(ollama_models.show_body(config, "llama3.1:8b", AT))
    assert llama["capabilities"] == ["completion", "tools", "vision"]
    assert llama["model_info"] == {"general.architecture": "aiub", "aiub.context_length": 8192}
    assert llama["details"]["format"] == "ollama" and llama["modified_at"] == AT
    assert json.loads(ollama_models.show_body(config, "qwen-coder:latest", AT))["capabilities"] == [
        "completion", "tools", "thinking"]
    assert json.loads(ollama_models.show_body(config, "embedder", AT))["capabilities"] == ["embedding"]
    with pytest.raises(ModelNotFound) as caught:
        ollama_models.show_body(config, "mistral", AT)
    assert caught.value.status == 404 and caught.value.message == "model 'mistral' not found"


def test_ps_and_version() -> None:
    assert json.loads(ollama_models.ps_body()) == {"models": []}
    assert json.loads(ollama_models.version_body()) == {"version": ollama_models.API_VERSION}


# --------------------------------------------------------------------------------------------- the dialect
class Clock:
    def __init__(self) -> None:
        self.ns = 1_000_000

    def __call__(self) -> int:
        self.ns += 1_000
        return self.ns


def dialect(endpoint: Endpoint, config: Any) -> Any:
    from services.gateway.dialects.ollama import OllamaDialect
    return OllamaDialect(endpoint, config, now_ns=Clock(), wall=lambda: 1_767_225_600.0)


def test_the_dialect_translates_and_keeps_the_clients_model_name(config: Any) -> None:
    door = dialect("chat", config)
    translated = door.parse(json.dumps({"model": "qwen-coder:latest", "stream": False,
                                        "messages": [{"role": "user", "content": "Hi"}]}).encode())
    assert translated.kind == "chat" and translated.body["model"] == "qwen-coder"
    assert translated.notes["model"] == "qwen-coder:latest" and translated.native is None
    answer = json.loads(door.result(translated, json.dumps({"choices": [{"finish_reason": "stop", "message": {
        "role": "assistant", "content": "Hello"}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}).encode()))
    assert answer["model"] == "qwen-coder:latest" and answer["message"]["content"] == "Hello"
    assert answer["created_at"] == "2026-01-01T00:00:00Z" and answer["total_duration"] > 0
    assert door.authorization({"authorization": "Bearer k"}) == "Bearer k"
    assert door.stream_media_type == "application/x-ndjson"


def test_the_dialect_streams_ndjson_and_fails_in_ollamas_shape(config: Any) -> None:
    from shared.messages import ErrorBody
    door = dialect("generate", config)
    translated = door.parse(json.dumps({"model": "llama3.1:8b", "prompt": "Why?"}).encode())
    stream = door.stream(translated)
    said = stream.chunks([chunk({"content": "Blue"}), chunk({}, "stop")]) + stream.end(3, 1)
    first, last = lines(said.splitlines(keepends=True))
    assert first["response"] == "Blue" and last["done"] is True and last["eval_count"] == 1
    failed = door.stream(translated)
    assert failed.error(502, ErrorBody(message="broken", type="upstream_error")) == b'{"error":"broken"}\n'
    assert door.error(404, ErrorBody(message="no such model", type="invalid_request_error")) \
        == b'{"error":"no such model"}'


def test_a_load_is_answered_by_the_door(config: Any) -> None:
    from services.gateway.dialects.ollama import Answered
    with pytest.raises(Answered) as caught:
        dialect("generate", config).parse(b'{"model": "llama3.1:8b", "keep_alive": 0}')
    assert json.loads(caught.value.body)["done_reason"] == "unload"


def test_images_to_a_model_configured_without_vision_are_a_400(config: Any) -> None:
    with pytest.raises(BadRequest) as caught:
        dialect("chat", config).parse(json.dumps({"model": "qwen-coder", "messages": [
            {"role": "user", "content": "x"}, {"role": "user", "content": "y", "images": [PNG]}]}).encode())
    assert caught.value.param == "messages[1].images" and "reasoning" in caught.value.message
    with pytest.raises(BadRequest) as generated:
        dialect("generate", config).parse(json.dumps({"model": "qwen-coder", "prompt": "x", "images": [PNG]}).encode())
    assert generated.value.param == "images"
    seen = dialect("chat", config).parse(json.dumps({"model": "llama3.1:8b", "messages": [
        {"role": "user", "content": "y", "images": [PNG]}]}).encode())
    assert seen.body["messages"][0]["content"][1] == {"type": "image_url", "image_url": {
        "url": f"data:image/png;base64,{PNG}"}}
    unlisted = dialect("chat", config).parse(json.dumps({"model": "somewhere-else", "messages": [
        {"role": "user", "content": "y", "images": [PNG]}]}).encode())
    assert unlisted.kind == "chat"  # no configured capabilities: its backend judges


def test_iso_dates_agree_with_datetime_to_the_microsecond() -> None:
    from datetime import UTC, datetime

    from services.gateway.dialects.ollama import iso

    for epoch in (0.0, 1_700_000_000.25, 1_700_000_000.999_999, 1_700_000_001.5, 1_600_000_000.123_456):
        said = iso(epoch)
        assert said.endswith("Z") and ("." not in said or not said.endswith("0Z"))  # Go's RFC3339Nano
        parsed = datetime.fromisoformat(said.replace("Z", "+00:00"))
        assert abs(parsed - datetime.fromtimestamp(epoch, UTC)).total_seconds() < 2e-6, said


@pytest.mark.parametrize("endpoint", ["chat", "generate"])
@pytest.mark.parametrize(("content", "thinking"), [("Hel", ""), ("", 'th"ink'), ("é\n", "x")])
def test_a_token_line_is_byte_for_byte_the_dict_it_stands_for(endpoint: str, content: str, thinking: str) -> None:
    """Token lines are joined from bytes (one per token): the same bytes as encoding their dict."""
    import msgspec

    from services.gateway.dialects.ollama_stream import OllamaStream

    stream = OllamaStream(endpoint, 'llama3.1:8b"', 0)  # type: ignore[arg-type]
    delta = {"content": content, **({"reasoning_content": thinking} if thinking else {})}
    chunk = msgspec.json.encode({"choices": [{"index": 0, "delta": delta, "finish_reason": None}]})
    said = {"role": "assistant", "content": content, **({"thinking": thinking} if thinking else {})}
    body = {"message": said} if endpoint == "chat" else {"response": content, **(
        {"thinking": thinking} if thinking else {})}
    expected = msgspec.json.encode({"model": 'llama3.1:8b"', "created_at": "2026-01-01T00:00:00.5Z", **body,
                                    "done": False}) + b"\n"
    assert stream.feed(chunk, 1, "2026-01-01T00:00:00.5Z") == [expected]
