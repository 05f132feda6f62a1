"""Ollama native translation, on payloads shaped like Ollama's docs (docs/api.md)."""

from __future__ import annotations

import base64
import json
import struct
from typing import Any

import pytest

from services.workers.adapters.base import InvalidRequest, StreamBroken
from services.workers.adapters.ollama import OllamaAdapter, api_root
from services.workers.adapters.ollama_request import chat_body, embed_body, generate_body
from shared.config import ProviderSpec
from shared.messages import InferenceRequest, RequestKind, WorkOrder

ADAPTER = OllamaAdapter(clock=lambda: 1_700_000_000.0)
PROVIDER = ProviderSpec(type="ollama", base_url="http://127.0.0.1:11434")
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="


def order(kind: RequestKind, body: dict[str, Any], stream: bool = False, model: str = "qwen-coder",
          backend: str = "qwen2.5-coder:7b") -> WorkOrder:
    return WorkOrder(request=InferenceRequest(id="r1", attempt="a1", kind=kind, model=model, body=body,
                                              stream=stream), reply_inbox="_INBOX.x.a1", provider="ollama",
                     backend_model=backend)


def lines(*objs: dict[str, Any]) -> bytes:
    return b"".join(json.dumps(o).encode() + b"\n" for o in objs)


def decoded(chunks: list[bytes]) -> list[dict[str, Any]]:
    return [json.loads(c) for c in chunks]


# ----------------------------------------------------------------------------- requests
def test_chat_request_maps_sampling_into_options_and_keeps_native_fields() -> None:
    body = {"model": "qwen-coder", "messages": [{"role": "developer", "content": "be brief"},
                                                 {"role": "user", "content": "hi"}],
            "temperature": 0.2, "top_p": 0.9, "max_tokens": 64, "stop": "\n\n", "seed": 7,
            "frequency_penalty": 0.5, "presence_penalty": 0.25, "top_k": 40, "keep_alive": "10m",
            "options": {"num_ctx": 8192, "temperature": 1.5}, "user": "ignored"}
    out = chat_body(body, "qwen2.5-coder:7b", stream=True)
    assert out["model"] == "qwen2.5-coder:7b" and out["stream"] is True
    assert out["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    assert out["options"] == {"num_ctx": 8192, "temperature": 0.2, "top_p": 0.9, "num_predict": 64,
                              "stop": ["\n\n"], "seed": 7, "frequency_penalty": 0.5, "presence_penalty": 0.25,
                              "top_k": 40}
    assert out["keep_alive"] == "10m"
    assert "user" not in out and "max_tokens" not in out


def test_fields_openai_does_not_know_pass_through_and_openais_own_stay_behind() -> None:
    body = {"messages": [{"role": "user", "content": "x"}], "simulator": {"tokens": 3}, "think": True,
            "mirostat_extra": 1, "model": "public", "stream": True, "user": "u", "logit_bias": {}, "n": 1,
            "options": {}, "format": None, "max_tokens": 4}
    out = chat_body(body, "m", stream=False)
    assert out == {"model": "m", "stream": False, "options": {"num_predict": 4}, "think": True,
                   "messages": [{"role": "user", "content": "x"}], "simulator": {"tokens": 3}, "mirostat_extra": 1}
    assert generate_body({"prompt": "p", "raw": True, "simulator": {}}, "m", False)["simulator"] == {}
    assert embed_body({"input": "x", "truncate": False, "simulator": {}, "encoding_format": "float"}, "m") == {
        "model": "m", "input": ["x"], "truncate": False, "simulator": {}}

def test_max_completion_tokens_wins_and_stream_is_always_explicit() -> None:
    out = chat_body({"messages": [{"role": "user", "content": "x"}], "max_completion_tokens": 5, "max_tokens": 9},
                    "m", stream=False)
    assert out["options"]["num_predict"] == 5 and out["stream"] is False


@pytest.mark.parametrize(("response_format", "expected"), [
    ({"type": "json_object"}, "json"),
    ({"type": "json_schema", "json_schema": {"name": "age", "schema": {"type": "object", "properties": {
        "age": {"type": "integer"}}, "required": ["age"]}}},
     {"type": "object", "properties": {"age": {"type": "integer"}}, "required": ["age"]}),
    ({"type": "text"}, None),
])
def test_response_format_becomes_format(response_format: dict[str, Any], expected: object) -> None:
    out = chat_body({"messages": [{"role": "user", "content": "x"}], "response_format": response_format}, "m", False)
    assert out.get("format") == expected


def test_image_parts_become_base64_images_and_urls_are_refused() -> None:
    content = [{"type": "text", "text": "what is in this picture?"},
               {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{PNG}"}}]
    out = chat_body({"messages": [{"role": "user", "content": content}]}, "llava", False)
    assert out["messages"] == [{"role": "user", "content": "what is in this picture?", "images": [PNG]}]
    with pytest.raises(InvalidRequest) as caught:
        chat_body({"messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}]}, "llava", False)
    assert caught.value.param == "messages[0].content"


def test_tool_calls_go_out_with_object_arguments_and_tool_results_name_their_tool() -> None:
    tools = [{"type": "function", "function": {"name": "get_current_weather", "description": "weather",
                                               "parameters": {"type": "object", "properties": {
                                                   "location": {"type": "string"}}}}}]
    messages = [
        {"role": "user", "content": "What is the weather today in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", "function": {
            "name": "get_current_weather", "arguments": "{\"location\": \"Paris, FR\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "22 degrees"},
    ]
    out = chat_body({"messages": messages, "tools": tools}, "llama3.1:8b", False)
    assert out["tools"] == tools
    assert out["messages"][1] == {"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "function": {"name": "get_current_weather", "arguments": {"location": "Paris, FR"}}}]}
    assert out["messages"][2] == {"role": "tool", "content": "22 degrees", "tool_name": "get_current_weather",
                                  "tool_call_id": "call_1"}
    assert "tools" not in chat_body({"messages": messages, "tools": tools, "tool_choice": "none"}, "m", False)


@pytest.mark.parametrize(("body", "param"), [
    ({"messages": [{"role": "user", "content": "x"}], "n": 2}, "n"),
    ({"messages": [{"role": "user", "content": "x"}], "stop": [1]}, "stop"),
    ({"messages": [{"role": "user", "content": "x"}], "response_format": {"type": "yaml"}}, "response_format"),
    ({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f", "arguments": "{oops"}}]}]},
     "messages[0].tool_calls[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}, "messages[0].content[0]"),
])
def test_untranslatable_chat_requests_name_the_field(body: dict[str, Any], param: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        chat_body(body, "m", False)
    assert caught.value.param == param


def test_generate_and_embed_requests() -> None:
    out = generate_body({"prompt": ["def compute_gcd(a, b):"], "suffix": "    return result", "temperature": 0,
                         "max_tokens": 32}, "codellama:code", True)
    assert out == {"model": "codellama:code", "stream": True, "prompt": "def compute_gcd(a, b):",
                   "suffix": "    return result", "options": {"temperature": 0, "num_predict": 32}}
    with pytest.raises(InvalidRequest):
        generate_body({"prompt": ["a", "b"]}, "m", False)
    assert embed_body({"input": "Why is the sky blue?", "dimensions": 4, "encoding_format": "base64"},
                      "all-minilm") == {"model": "all-minilm", "input": ["Why is the sky blue?"], "dimensions": 4}
    with pytest.raises(InvalidRequest):
        embed_body({"input": [[1, 2, 3]]}, "all-minilm")


def test_build_picks_endpoint_url_and_bearer_key() -> None:
    chat = ADAPTER.build(order("chat", {"messages": [{"role": "user", "content": "x"}]}, stream=True), PROVIDER, None)
    assert (chat.method, chat.url, chat.stream, chat.headers) == ("POST", "http://127.0.0.1:11434/api/chat", True, {})
    cloud = ProviderSpec(type="ollama_cloud", base_url="https://ollama.com/api")
    embed = ADAPTER.build(order("embedding", {"input": ["a", "b"]}), cloud, "k-123")
    assert (embed.url, embed.stream, embed.headers) == ("https://ollama.com/api/embed", False,
                                                        {"authorization": "Bearer k-123"})
    assert api_root("http://h:11434/v1") == "http://h:11434"


# ----------------------------------------------------------------------------- replies
STREAM = [
    {"model": "qwen2.5-coder:7b", "created_at": "2023-08-04T08:52:19.385406455-07:00",
     "message": {"role": "assistant", "content": "The"}, "done": False},
    {"model": "qwen2.5-coder:7b", "created_at": "2023-08-04T08:52:19.5Z",
     "message": {"role": "assistant", "content": " sky"}, "done": False},
    {"model": "qwen2.5-coder:7b", "created_at": "2023-08-04T19:22:45.499127Z",
     "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "length",
     "total_duration": 4883583458, "load_duration": 1334875, "prompt_eval_count": 26,
     "prompt_eval_duration": 342546000, "eval_count": 2, "eval_duration": 4535599000},
]


def test_chat_stream_role_first_content_in_order_finish_and_usage_last() -> None:
    stream = ADAPTER.stream(order("chat", {"stream_options": {"include_usage": True}}, stream=True))
    raw = lines(*STREAM)
    chunks: list[bytes] = []
    for i in range(0, len(raw), 7):  # lines split across reads
        chunks += stream.feed(raw[i:i + 7])
    out = decoded(chunks)
    assert stream.finished
    assert out[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"].get("content") for c in out[1:3]] == ["The", " sky"]
    assert out[3]["choices"][0]["finish_reason"] == "length"
    assert out[4]["choices"] == [] and out[4]["usage"] == {"prompt_tokens": 26, "completion_tokens": 2,
                                                           "total_tokens": 28}
    assert {c["model"] for c in out} == {"qwen-coder"} and {c["id"] for c in out} == {"chatcmpl-a1"}
    assert {c["object"] for c in out} == {"chat.completion.chunk"} and out[0]["created"] == 1_700_000_000
    assert (stream.usage.prompt_tokens, stream.usage.completion_tokens) == (26, 2)


def test_stream_without_usage_request_has_no_usage_chunk_and_stops_at_done() -> None:
    stream = ADAPTER.stream(order("chat", {}, stream=True))
    out = decoded(stream.feed(lines(*STREAM) + lines(STREAM[0])))
    assert all(c["choices"] for c in out)
    assert out[-1]["choices"][0]["finish_reason"] == "length"


def test_streamed_tool_call_becomes_tool_call_delta_and_finish_reason_tool_calls() -> None:
    stream = ADAPTER.stream(order("chat", {}, stream=True))
    out = decoded(stream.feed(lines(
        {"model": "m", "message": {"role": "assistant", "content": "", "tool_calls": [
            {"function": {"name": "get_current_weather", "arguments": {"format": "celsius", "location": "Paris, FR"}}},
            {"id": "call_x", "function": {"index": 1, "name": "get_time", "arguments": {}}}]}, "done": False},
        {"model": "m", "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
         "prompt_eval_count": 122, "eval_count": 33})))
    calls = out[1]["choices"][0]["delta"]["tool_calls"]
    assert [c["index"] for c in calls] == [0, 1]
    assert calls[0]["id"].startswith("call_") and calls[1]["id"] == "call_x"
    assert calls[0]["type"] == "function" and calls[0]["function"]["name"] == "get_current_weather"
    assert json.loads(calls[0]["function"]["arguments"]) == {"format": "celsius", "location": "Paris, FR"}
    assert out[-1]["choices"][0]["finish_reason"] == "tool_calls"


def test_error_line_and_garbage_break_the_stream() -> None:
    with pytest.raises(StreamBroken, match="out of memory"):
        ADAPTER.stream(order("chat", {}, stream=True)).feed(lines(STREAM[0], {"error": "out of memory"}))
    with pytest.raises(StreamBroken):
        ADAPTER.stream(order("chat", {}, stream=True)).feed(b"{not json}\n")
    cut = ADAPTER.stream(order("chat", {}, stream=True))
    cut.feed(lines(*STREAM[:2]) + b'{"model": "m", "done"')
    assert not cut.finished


def test_generate_stream_is_text_completion_chunks() -> None:
    stream = ADAPTER.stream(order("completion", {}, stream=True))
    out = decoded(stream.feed(lines({"model": "m", "response": "The", "done": False},
                                    {"model": "m", "response": "", "done": True, "done_reason": "stop",
                                     "prompt_eval_count": 3, "eval_count": 1})))
    assert [c["object"] for c in out] == ["text_completion", "text_completion"]
    assert out[0]["choices"][0]["text"] == "The" and out[0]["id"] == "cmpl-a1"
    assert out[1]["choices"][0] == {"index": 0, "text": "", "logprobs": None, "finish_reason": "stop"}


def test_chat_result_with_tool_calls_and_usage() -> None:
    body = json.dumps({"model": "llama3.2", "created_at": "2024-07-22T20:33:28.123648Z", "message": {
        "role": "assistant", "content": "", "tool_calls": [{"function": {"name": "get_current_weather", "arguments": {
            "format": "celsius", "location": "Paris, FR"}}}]}, "done_reason": "stop", "done": True,
        "total_duration": 885095291, "prompt_eval_count": 122, "eval_count": 33}).encode()
    data, usage = ADAPTER.result(order("chat", {}), body)
    obj = json.loads(data)
    choice = obj["choices"][0]
    assert obj["object"] == "chat.completion" and obj["model"] == "qwen-coder"
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "get_current_weather"
    assert "index" not in choice["message"]["tool_calls"][0]
    assert obj["usage"] == {"prompt_tokens": 122, "completion_tokens": 33, "total_tokens": 155}
    assert (usage.prompt_tokens, usage.completion_tokens) == (122, 33)


def test_generate_result_and_embeddings_float_and_base64() -> None:
    data, _ = ADAPTER.result(order("completion", {}), json.dumps({
        "model": "m", "response": "The sky is blue.", "done": True, "done_reason": "stop", "prompt_eval_count": 26,
        "eval_count": 290}).encode())
    assert json.loads(data)["choices"][0]["text"] == "The sky is blue."
    embed = json.dumps({"model": "all-minilm", "embeddings": [[0.5, -0.25], [1.0, 0.0]], "total_duration": 14143917,
                        "prompt_eval_count": 8}).encode()
    floats = json.loads(ADAPTER.result(order("embedding", {"input": ["a", "b"]}), embed)[0])
    assert [d["embedding"] for d in floats["data"]] == [[0.5, -0.25], [1.0, 0.0]]
    assert [d["index"] for d in floats["data"]] == [0, 1] and floats["usage"]["prompt_tokens"] == 8
    packed = json.loads(ADAPTER.result(order("embedding", {"input": "a", "encoding_format": "base64"}), embed)[0])
    assert struct.unpack("<2f", base64.b64decode(packed["data"][0]["embedding"])) == (0.5, -0.25)


def test_models_listing_and_error_text() -> None:
    request = ADAPTER.models_request(PROVIDER, None)
    assert (request.method, request.url) == ("GET", "http://127.0.0.1:11434/api/tags")
    tags = json.dumps({"models": [{"name": "llama3.1:8b", "model": "llama3.1:8b"}, {"model": "kimi-k2:1t"}]})
    assert ADAPTER.parse_models(tags.encode()) == ["llama3.1:8b", "kimi-k2:1t"]
    assert ADAPTER.error_message(b'{"error": "model \\"x\\" not found, try pulling it first"}') == \
        'model "x" not found, try pulling it first'
