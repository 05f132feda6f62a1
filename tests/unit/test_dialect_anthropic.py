"""The Anthropic front door's translation, both directions, as plain function calls."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.gateway.dialects import Translated
from services.gateway.dialects.anthropic import MESSAGES
from services.gateway.dialects.anthropic_count import count_tokens
from services.gateway.dialects.openai_objects import as_chunk
from services.workers.adapters.anthropic import AnthropicAdapter
from shared.config import ProviderSpec
from shared.errors import BadRequest, ModelNotFound, RateLimited, ServiceUnavailable, Unauthorized, UpstreamError
from shared.messages import ErrorBody, InferenceRequest, WorkOrder

BASE = {"model": "claude-x", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}


def parse(**changes: Any) -> Translated:
    return MESSAGES.parse(json.dumps({**BASE, **changes}).encode())


def bad(**changes: Any) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse(**changes)
    return caught.value


# Requests: Anthropic → OpenAI


def test_minimal_request_becomes_an_openai_chat_body_and_keeps_the_native_one() -> None:
    t = parse()
    assert t.kind == "chat"
    assert t.body == {"model": "claude-x", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 64}
    assert t.native == BASE and t.native_dialect == "anthropic"


def test_system_string_or_blocks_and_sampling_fields() -> None:
    t = parse(system=[{"type": "text", "text": "be brief"}, {"type": "text", "text": "be kind"}],
              stop_sequences=["END"], temperature=0.3, top_p=0.9, top_k=40, metadata={"user_id": "u1"}, stream=True)
    assert t.body["messages"][0] == {"role": "system", "content": "be brief\n\nbe kind"}
    assert (t.body["stop"], t.body["temperature"], t.body["top_p"], t.body["top_k"], t.body["user"]) == (
        ["END"], 0.3, 0.9, 40, "u1")
    assert t.body["stream"] is True and t.body["stream_options"] == {"include_usage": True}
    assert parse(system="plain").body["messages"][0] == {"role": "system", "content": "plain"}


def test_every_block_type_round_trips_to_openai_messages() -> None:
    messages = [
        {"role": "user", "content": [
            {"type": "text", "text": "look "},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}},
            {"type": "image", "source": {"type": "url", "url": "https://x/cat.png"}}]},
        {"role": "assistant", "content": [
            {"type": "thinking", "thinking": "hmm", "signature": "s"},
            {"type": "text", "text": "calling"},
            {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "4C"}]},
            {"type": "tool_result", "tool_use_id": "toolu_2", "content": "boom", "is_error": True},
            {"type": "text", "text": "and?"}]},
    ]
    out = parse(messages=messages).body["messages"]
    assert out == [
        {"role": "user", "content": [
            {"type": "text", "text": "look "},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            {"type": "image_url", "image_url": {"url": "https://x/cat.png"}}]},
        {"role": "assistant", "content": "calling", "tool_calls": [
            {"id": "toolu_1", "type": "function", "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]},
        {"role": "tool", "tool_call_id": "toolu_1", "content": "4C"},
        {"role": "tool", "tool_call_id": "toolu_2", "content": "Error: boom"},
        {"role": "user", "content": "and?"},
    ]


def test_tool_only_assistant_turn_has_null_content() -> None:
    out = parse(messages=[{"role": "user", "content": "x"}, {"role": "assistant", "content": [
        {"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]).body["messages"]
    assert out[1]["content"] is None and out[1]["tool_calls"][0]["function"]["arguments"] == "{}"


@pytest.mark.parametrize(("choice", "expected"), [
    ({"type": "auto"}, "auto"), ({"type": "any"}, "required"), ({"type": "none"}, "none"),
    ({"type": "tool", "name": "weather"}, {"type": "function", "function": {"name": "weather"}})])
def test_tools_and_each_tool_choice(choice: dict[str, Any], expected: object) -> None:
    tools = [{"name": "weather", "description": "w", "input_schema": {"type": "object", "properties": {}}}]
    body = parse(tools=tools, tool_choice={**choice, "disable_parallel_tool_use": True}).body
    assert body["tools"] == [{"type": "function", "function": {
        "name": "weather", "parameters": {"type": "object", "properties": {}}, "description": "w"}}]
    assert body["tool_choice"] == expected and body["parallel_tool_calls"] is False


@pytest.mark.parametrize(("changes", "param"), [
    ({"max_tokens": None}, "max_tokens"), ({"max_tokens": 0}, "max_tokens"), ({"model": ""}, "model"),
    ({"messages": []}, "messages"), ({"messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file"}}]}]},
     "messages.0.content.0.source"),
    ({"messages": [{"role": "user", "content": [{"type": "document", "source": {}}]}]}, "messages.0.content.0"),
    ({"messages": [{"role": "user", "content": [{"type": "tool_result"}]}]}, "messages.0.content.0.tool_use_id"),
    ({"stop_sequences": "END"}, "stop_sequences"), ({"temperature": "hot"}, "temperature"),
    ({"tools": [{"name": "f"}]}, "tools.0.input_schema"), ({"tool_choice": {"type": "maybe"}}, "tool_choice"),
    ({"system": [{"type": "image"}]}, "system.0"), ({"stream": "yes"}, "stream")])
def test_a_bad_field_is_a_400_naming_it(changes: dict[str, Any], param: str) -> None:
    error = bad(**changes)
    assert error.param == param and error.message.startswith(param + ":")


def test_body_that_is_not_json_or_an_object() -> None:
    for raw in (b"{", b"[]"):
        with pytest.raises(BadRequest):
            MESSAGES.parse(raw)


# Answers: OpenAI → Anthropic


def completion(message: dict[str, Any], finish: str = "stop", **choice: Any) -> bytes:
    return json.dumps({"id": "chatcmpl-abc", "object": "chat.completion", "model": "backend-name",
                       "choices": [{"index": 0, "message": message, "finish_reason": finish, **choice}],
                       "usage": {"prompt_tokens": 7, "completion_tokens": 3}}).encode()


def test_whole_text_answer() -> None:
    out = json.loads(MESSAGES.result(parse(), completion({"role": "assistant", "content": "hello"})))
    assert out == {"id": "msg_abc", "type": "message", "role": "assistant", "model": "claude-x",
                   "content": [{"type": "text", "text": "hello"}], "stop_reason": "end_turn", "stop_sequence": None,
                   "usage": {"input_tokens": 7, "output_tokens": 3}}


def test_whole_answer_with_reasoning_and_tool_calls() -> None:
    data = completion({"role": "assistant", "content": None, "reasoning_content": "think",
                       "tool_calls": [{"id": "call_1", "type": "function",
                                       "function": {"name": "weather", "arguments": '{"city":"Oslo"}'}}]},
                      "tool_calls")
    out = json.loads(MESSAGES.result(parse(), data))
    assert out["content"] == [{"type": "thinking", "thinking": "think", "signature": ""},
                              {"type": "tool_use", "id": "call_1", "name": "weather", "input": {"city": "Oslo"}}]
    assert out["stop_reason"] == "tool_use"


@pytest.mark.parametrize(("finish", "stop_reason", "sequence"), [
    ("length", "max_tokens", None), ("content_filter", "refusal", None), ("stop", "stop_sequence", "END")])
def test_stop_reasons(finish: str, stop_reason: str, sequence: str | None) -> None:
    data = completion({"role": "assistant", "content": "x"}, finish, stop_reason="END")
    out = json.loads(MESSAGES.result(parse(stop_sequences=["END"]), data))
    assert (out["stop_reason"], out["stop_sequence"]) == (stop_reason, sequence)


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return json.dumps({"id": "chatcmpl-abc", "object": "chat.completion.chunk", "model": "m",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).encode()


def events(raw: bytes) -> list[dict[str, Any]]:
    """The SSE events, checking each `event:` line names its data's type."""
    out = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        obj = json.loads(data[6:])
        assert obj["type"] == name[7:]
        out.append(obj)
    return out


def sequence(evs: list[dict[str, Any]]) -> list[str]:
    return [e["type"] + (":" + e["delta"]["type"] if e["type"] == "content_block_delta" else "")
            + (":" + e["content_block"]["type"] if e["type"] == "content_block_start" else "") for e in evs]


def test_text_stream_has_anthropics_exact_event_sequence() -> None:
    s = MESSAGES.stream(parse(stream=True))
    raw = s.chunks([chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"})])
    raw += s.chunks([chunk({"content": "lo"}), chunk({}, "stop")])
    raw += s.end(9, 2)
    evs = events(raw)
    assert sequence(evs) == ["message_start", "content_block_start:text", "ping", "content_block_delta:text_delta",
                             "content_block_delta:text_delta", "content_block_stop", "message_delta", "message_stop"]
    start = evs[0]["message"]
    assert (start["id"], start["model"], start["content"], start["stop_reason"]) == ("msg_abc", "claude-x", [], None)
    assert [e["delta"]["text"] for e in evs if e["type"] == "content_block_delta"] == ["Hel", "lo"]
    assert evs[-2] == {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                       "usage": {"input_tokens": 9, "output_tokens": 2}}


def test_thinking_then_text_then_tool_use_blocks() -> None:
    s = MESSAGES.stream(parse(stream=True))
    raw = s.chunks([chunk({"reasoning_content": "let me"}), chunk({"reasoning": " see"}), chunk({"content": "ok"}),
                    chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                           "function": {"name": "weather", "arguments": ""}}]}),
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '{"city":'}}]}),
                    chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"Oslo"}'}}]}),
                    chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                                           "function": {"name": "time", "arguments": "{}"}}]}),
                    chunk({}, "tool_calls")]) + s.end(5, 6)
    evs = events(raw)
    assert sequence(evs) == [
        "message_start", "content_block_start:thinking", "ping", "content_block_delta:thinking_delta",
        "content_block_delta:thinking_delta", "content_block_stop",
        "content_block_start:text", "content_block_delta:text_delta", "content_block_stop",
        "content_block_start:tool_use", "content_block_delta:input_json_delta",
        "content_block_delta:input_json_delta", "content_block_stop",
        "content_block_start:tool_use", "content_block_delta:input_json_delta", "content_block_stop",
        "message_delta", "message_stop"]
    starts = [e for e in evs if e["type"] == "content_block_start"]
    assert [e["index"] for e in starts] == [0, 1, 2, 3]
    assert starts[2]["content_block"] == {"type": "tool_use", "id": "call_1", "name": "weather", "input": {}}
    assert [e["delta"].get("partial_json") for e in evs if e["type"] == "content_block_delta"][3:] == [
        '{"city":', '"Oslo"}', "{}"]
    assert evs[-2]["delta"]["stop_reason"] == "tool_use"


def test_an_empty_stream_still_has_one_text_block() -> None:
    evs = events(MESSAGES.stream(parse(stream=True)).end(0, 0))
    assert sequence(evs) == ["message_start", "content_block_start:text", "ping", "content_block_stop",
                             "message_delta", "message_stop"]


def test_usage_from_the_usage_chunk_when_done_has_none() -> None:
    s = MESSAGES.stream(parse(stream=True))
    usage = json.dumps({"id": "x", "object": "chat.completion.chunk", "choices": [],
                        "usage": {"prompt_tokens": 4, "completion_tokens": 8}}).encode()
    evs = events(s.chunks([chunk({"content": "a"}, "length"), usage]) + s.end(0, 0))
    assert evs[-2]["usage"] == {"input_tokens": 4, "output_tokens": 8}
    assert evs[-2]["delta"]["stop_reason"] == "max_tokens"


def test_a_mid_stream_error_is_one_error_event_and_no_message_stop() -> None:
    s = MESSAGES.stream(parse(stream=True))
    s.chunks([chunk({"content": "a"})])
    evs = events(s.error(502, UpstreamError("backend died").body()))
    assert evs == [{"type": "error", "error": {"type": "api_error", "message": "backend died"}}]


def test_a_whole_result_replays_as_a_stream() -> None:
    s = MESSAGES.stream(parse(stream=True))
    data = completion({"role": "assistant", "content": "hi", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}, "tool_calls")
    evs = events(s.chunks([as_chunk(data)]) + s.end(7, 3))
    assert "content_block_start:tool_use" in sequence(evs) and evs[-2]["delta"]["stop_reason"] == "tool_use"


@pytest.mark.parametrize(("error", "kind"), [
    (BadRequest("x"), "invalid_request_error"), (Unauthorized("x"), "authentication_error"),
    (ModelNotFound("x"), "not_found_error"), (RateLimited("x"), "rate_limit_error"),
    (ServiceUnavailable("x"), "overloaded_error"), (UpstreamError("x"), "api_error")])
def test_errors_in_anthropics_shape(error: BadRequest, kind: str) -> None:
    assert json.loads(MESSAGES.error(error.status, error.body())) == {
        "type": "error", "error": {"type": kind, "message": "x"}}
    assert json.loads(MESSAGES.error(409, ErrorBody(message="m", type="t")))["error"]["type"] == "invalid_request_error"


def test_credentials_from_x_api_key_or_bearer() -> None:
    assert MESSAGES.authorization({"x-api-key": "k1"}) == "Bearer k1"
    assert MESSAGES.authorization({"authorization": "Bearer k2", "x-api-key": "k1"}) == "Bearer k2"
    assert MESSAGES.authorization({}) is None


def test_count_tokens_estimate_grows_with_the_prompt() -> None:
    small = json.loads(count_tokens(json.dumps(BASE).encode()))["input_tokens"]
    big = json.loads(count_tokens(json.dumps({**BASE, "messages": [
        {"role": "user", "content": "word " * 400}]}).encode()))["input_tokens"]
    assert 1 <= small < 20 and 500 < big < 700
    with pytest.raises(BadRequest):
        count_tokens(b'{"model": "m"}')


# The worker's side: an anthropic provider sends the client's own body


def test_an_anthropic_provider_sends_the_native_body_with_the_gateways_model_stream_and_cap() -> None:
    t = parse(thinking={"type": "enabled", "budget_tokens": 1024}, max_tokens=9000, stream=True)
    capped = {**t.body, "max_tokens": 4096}  # the gateway's max_tokens cap applies to the OpenAI body
    request = InferenceRequest(id="r", attempt="a", kind="chat", model="claude-x", body=capped, stream=True,
                               native_body=t.native, native_dialect=t.native_dialect)
    order = WorkOrder(request=request, reply_inbox="_INBOX.x", provider="p", backend_model="claude-backend")
    built = AnthropicAdapter().build(order, ProviderSpec(type="anthropic", base_url="https://a/v1"), "k")
    assert built.json == {**BASE, "thinking": {"type": "enabled", "budget_tokens": 1024}, "max_tokens": 4096,
                          "stream": True, "model": "claude-backend"}
    plain = WorkOrder(request=InferenceRequest(id="r", attempt="a", kind="chat", model="claude-x", body=t.body),
                      reply_inbox="_INBOX.x", provider="p", backend_model="claude-backend")
    assert "thinking" not in (AnthropicAdapter().build(plain, ProviderSpec(type="anthropic", base_url="https://a/v1"),
                                                       "k").json or {})
