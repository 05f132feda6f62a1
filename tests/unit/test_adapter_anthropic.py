"""Anthropic Messages translation, on payloads shaped like Anthropic's documented API."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.workers.adapters.anthropic import AnthropicAdapter
from services.workers.adapters.anthropic_request import DEFAULT_MAX_TOKENS, messages_body
from services.workers.adapters.base import InvalidRequest, StreamBroken
from shared.config import ProviderSpec
from shared.messages import InferenceRequest, RequestKind, WorkOrder

ADAPTER = AnthropicAdapter(clock=lambda: 1_700_000_000.0)
PROVIDER = ProviderSpec(type="anthropic", base_url="https://api.anthropic.com/v1", requires_api_key=True,
                        env_var="ANTHROPIC_API_KEY")
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Get the current weather",
                                                 "parameters": {"type": "object", "properties": {
                                                     "location": {"type": "string"}}, "required": ["location"]}}}


def order(body: dict[str, Any], stream: bool = False, kind: RequestKind = "chat") -> WorkOrder:
    return WorkOrder(request=InferenceRequest(id="r1", attempt="a1", kind=kind, model="claude", body=body,
                                              stream=stream), reply_inbox="_INBOX.x.a1", provider="anthropic",
                     backend_model="claude-sonnet-4-20250514")


def sse(*events: dict[str, Any]) -> bytes:
    return b"".join(f"event: {e['type']}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


# ----------------------------------------------------------------------------- requests
def test_system_prompt_max_tokens_default_and_sampling() -> None:
    out = messages_body({"messages": [{"role": "system", "content": "You are terse."},
                                      {"role": "developer", "content": "Answer in French."},
                                      {"role": "user", "content": "Hello"}],
                         "stop": "END", "temperature": 1.7, "top_p": 0.9, "top_k": 5, "user": "u-42"},
                        "claude-sonnet-4-20250514", stream=True)
    assert out == {"model": "claude-sonnet-4-20250514", "max_tokens": DEFAULT_MAX_TOKENS, "stream": True,
                   "system": "You are terse.\n\nAnswer in French.", "messages": [{"role": "user", "content": "Hello"}],
                   "stop_sequences": ["END"], "temperature": 1.0, "top_p": 0.9, "top_k": 5,
                   "metadata": {"user_id": "u-42"}}
    assert messages_body({"messages": [{"role": "user", "content": "x"}], "max_tokens": 10}, "m", False)[
        "max_tokens"] == 10


def test_tools_tool_calls_and_results_become_blocks_in_alternating_turns() -> None:
    messages = [
        {"role": "user", "content": "Weather in Paris and Rome?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "toolu_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location": "Paris"}'}},
            {"id": "toolu_2", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"location": "Rome"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "22C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "25C"},
        {"role": "user", "content": "Thanks!"},
    ]
    out = messages_body({"messages": messages, "tools": [WEATHER_TOOL], "tool_choice": "required",
                         "parallel_tool_calls": False}, "m", False)
    assert out["tools"] == [{"name": "get_weather", "description": "Get the current weather", "input_schema": {
        "type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}]
    assert out["tool_choice"] == {"type": "any", "disable_parallel_tool_use": True}
    assert [t["role"] for t in out["messages"]] == ["user", "assistant", "user"]
    assert out["messages"][1]["content"] == [
        {"type": "text", "text": "Let me check."},
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"location": "Paris"}},
        {"type": "tool_use", "id": "toolu_2", "name": "get_weather", "input": {"location": "Rome"}}]
    assert out["messages"][2]["content"] == [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "22C"},
        {"type": "tool_result", "tool_use_id": "toolu_2", "content": "25C"},
        {"type": "text", "text": "Thanks!"}]


def test_images_named_tool_choice_and_refusals() -> None:
    out = messages_body({"messages": [{"role": "user", "content": [
        {"type": "text", "text": "Compare"},
        {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/4AAQ"}},
        {"type": "image_url", "image_url": {"url": "https://example.com/b.png"}}]}],
        "tools": [WEATHER_TOOL], "tool_choice": {"type": "function", "function": {"name": "get_weather"}}}, "m", False)
    assert out["messages"][0]["content"][1:] == [
        {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9j/4AAQ"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/b.png"}}]
    assert out["tool_choice"] == {"type": "tool", "name": "get_weather"}
    for bad, param in [({"n": 3}, "n"), ({"response_format": {"type": "json_object"}}, "response_format"),
                       ({"tool_choice": "sometimes", "tools": [WEATHER_TOOL]}, "tool_choice")]:
        with pytest.raises(InvalidRequest) as caught:
            messages_body({"messages": [{"role": "user", "content": "x"}], **bad}, "m", False)
        assert caught.value.param == param


def test_build_url_headers_and_chat_only() -> None:
    request = ADAPTER.build(order({"messages": [{"role": "user", "content": "x"}]}, stream=True), PROVIDER, "sk-ant-1")
    assert (request.url, request.stream) == ("https://api.anthropic.com/v1/messages", True)
    assert request.headers == {"anthropic-version": "2023-06-01", "x-api-key": "sk-ant-1"}
    bare = ProviderSpec(type="anthropic", base_url="https://api.anthropic.com")
    assert ADAPTER.build(order({"messages": []}), bare, None).url == "https://api.anthropic.com/v1/messages"
    assert ADAPTER.kinds == frozenset({"chat"})


# ----------------------------------------------------------------------------- replies
TOOL_STREAM = [
    {"type": "message_start", "message": {"id": "msg_014p7gG3wDgGV9EUtLvnow3U", "type": "message", "role": "assistant",
                                          "model": "claude-sonnet-4-20250514", "content": [], "stop_reason": None,
                                          "stop_sequence": None, "usage": {"input_tokens": 472, "output_tokens": 2,
                                                                           "cache_read_input_tokens": 8}}},
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "ping"},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Okay,"}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " checking."}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1,
     "content_block": {"type": "tool_use", "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "name": "get_weather", "input": {}}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}},
    {"type": "content_block_delta", "index": 1,
     "delta": {"type": "input_json_delta", "partial_json": "{\"location\":"}},
    {"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": " \"Paris\"}"}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use", "stop_sequence": None},
     "usage": {"output_tokens": 89}},
    {"type": "message_stop"},
]


def test_stream_events_become_openai_chunks() -> None:
    stream = ADAPTER.stream(order({"stream_options": {"include_usage": True}}, stream=True))
    raw = sse(*TOOL_STREAM)
    chunks: list[bytes] = []
    for i in range(0, len(raw), 11):
        chunks += stream.feed(raw[i:i + 11])
    out = [json.loads(c) for c in chunks]
    assert stream.finished
    deltas = [c["choices"][0]["delta"] for c in out if c["choices"]]
    assert deltas[0] == {"role": "assistant", "content": ""}
    assert [d.get("content") for d in deltas[1:3]] == ["Okay,", " checking."]
    assert deltas[3]["tool_calls"] == [{"index": 0, "id": "toolu_01T1x1fJ34qAmk2tNTrN7Up6", "type": "function",
                                        "function": {"arguments": "", "name": "get_weather"}}]
    arguments = "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[4:6])
    assert json.loads(arguments) == {"location": "Paris"}
    assert out[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert out[-1]["choices"] == [] and out[-1]["usage"] == {"prompt_tokens": 480, "completion_tokens": 89,
                                                             "total_tokens": 569}
    assert {c["model"] for c in out} == {"claude"} and {c["id"] for c in out} == {"chatcmpl-a1"}


@pytest.mark.parametrize(("stop_reason", "finish"), [("end_turn", "stop"), ("max_tokens", "length"),
                                                      ("stop_sequence", "stop"), ("refusal", "content_filter")])
def test_stop_reasons(stop_reason: str, finish: str) -> None:
    stream = ADAPTER.stream(order({}, stream=True))
    out = stream.feed(sse(TOOL_STREAM[0], {"type": "message_delta", "delta": {"stop_reason": stop_reason},
                                           "usage": {"output_tokens": 1}}, {"type": "message_stop"}))
    assert json.loads(out[-1])["choices"][0]["finish_reason"] == finish
    assert stream.finished


def test_error_event_breaks_the_stream_and_a_cut_stream_is_not_finished() -> None:
    with pytest.raises(StreamBroken, match="overloaded_error"):
        ADAPTER.stream(order({}, stream=True)).feed(sse(TOOL_STREAM[0], {
            "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}))
    cut = ADAPTER.stream(order({}, stream=True))
    cut.feed(sse(*TOOL_STREAM[:5]))
    assert not cut.finished


def test_whole_message_result() -> None:
    body = json.dumps({"id": "msg_01", "type": "message", "role": "assistant", "model": "claude-sonnet-4-20250514",
                       "content": [{"type": "text", "text": "Hi! "}, {"type": "text", "text": "Weather:"},
                                   {"type": "tool_use", "id": "toolu_9", "name": "get_weather",
                                    "input": {"location": "Paris"}}],
                       "stop_reason": "tool_use", "stop_sequence": None,
                       "usage": {"input_tokens": 10, "output_tokens": 25}}).encode()
    data, usage = ADAPTER.result(order({}), body)
    obj = json.loads(data)
    message = obj["choices"][0]["message"]
    assert obj["object"] == "chat.completion" and obj["model"] == "claude"
    assert message["content"] == "Hi! Weather:"
    assert message["tool_calls"] == [{"id": "toolu_9", "type": "function", "function": {
        "name": "get_weather", "arguments": '{"location":"Paris"}'}}]
    assert obj["choices"][0]["finish_reason"] == "tool_calls"
    assert (usage.prompt_tokens, usage.completion_tokens) == (10, 25)


def test_error_body_and_models_listing() -> None:
    assert ADAPTER.error_message(b'{"type":"error","error":{"type":"invalid_request_error",'
                                 b'"message":"max_tokens: Field required"}}') == "max_tokens: Field required"
    request = ADAPTER.models_request(PROVIDER, "sk-ant-1")
    assert request.url.startswith("https://api.anthropic.com/v1/models") and request.headers["x-api-key"] == "sk-ant-1"
    listing = {"data": [{"type": "model", "id": "claude-sonnet-4-20250514", "display_name": "Claude Sonnet 4",
                         "created_at": "2025-05-22T00:00:00Z"}], "has_more": False}
    assert ADAPTER.parse_models(json.dumps(listing).encode()) == ["claude-sonnet-4-20250514"]
