"""The simulator's Anthropic wire format and its tool-call replies, as pure functions."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from services.simulator import anthropic_wire, ollama_wire, openai_wire
from services.simulator.knobs import Knobs
from services.simulator.openai_wire import WireError
from services.simulator.tools import arguments_for, tool_call

WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {
    "location": {"type": "string"}, "days": {"type": "integer"}, "metric": {"type": "boolean"}}}}}
TIME = {"type": "function", "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}}}
ANTHROPIC = {"model": "claude", "max_tokens": 3, "system": "be brief",
             "messages": [{"role": "user", "content": "hello big world"}]}


def stream_all(reply: Any) -> bytes:
    return b"".join([reply.prelude(), *(reply.event(i) for i in range(reply.n)), reply.tail(1000)])


def events(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in raw.strip().split(b"\n\n"):
        event_line, data_line = block.split(b"\n")
        assert event_line.startswith(b"event: ") and data_line.startswith(b"data: ")
        data = orjson.loads(data_line[6:])
        assert data["type"] == event_line[7:].decode()
        out.append((data["type"], data))
    return out


def test_tool_call_arguments_follow_the_schema_and_tool_choice() -> None:
    assert arguments_for(WEATHER["function"]["parameters"]) == {"location": "tok0", "days": 1, "metric": True}
    call = tool_call({"tools": [WEATHER, TIME], "tool_choice": {"type": "function", "function": {"name": "get_time"}}},
                     "r1")
    assert call is not None and call.name == "get_time" and call.arguments_json == "{}"
    first = tool_call({"tools": [WEATHER]}, "r1")
    assert first is not None and orjson.loads(first.arguments_json) == first.arguments and first.n > 1
    assert tool_call({"tools": [WEATHER], "tool_choice": "none"}, "r1") is None
    assert tool_call({}, "r1") is None
    anthropic = tool_call({"tools": [{"name": "lookup", "input_schema": {"properties": {"q": {"type": "string"}}}}]},
                          "r")
    assert anthropic is not None and (anthropic.name, anthropic.arguments) == ("lookup", {"q": "tok0"})


def test_openai_tool_call_stream_and_json() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [WEATHER], "stream": True}
    reply = openai_wire.ChatReply(body, Knobs(tool_call=True), "m", "rid", 1)
    chunks = [orjson.loads(b[6:]) for b in stream_all(reply).split(b"\n\n") if b and b != b"data: [DONE]"]
    calls = [c["choices"][0]["delta"]["tool_calls"][0] for c in chunks[1:-1]]
    assert calls[0]["id"].startswith("call_") and calls[0]["function"]["name"] == "get_weather"
    assert orjson.loads("".join(c["function"]["arguments"] for c in calls)) == {"location": "tok0", "days": 1,
                                                                                 "metric": True}
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    whole = orjson.loads(openai_wire.ChatReply({**body, "stream": False}, Knobs(tool_call=True), "m", "rid", 1).full(0))
    assert whole["choices"][0]["message"]["content"] is None
    assert whole["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "get_weather"
    plain = openai_wire.ChatReply({**body, "stream": False}, Knobs(), "m", "rid", 1)  # knob off: an answer
    assert orjson.loads(plain.full(0))["choices"][0]["finish_reason"] == "stop"


def test_ollama_tool_call_is_one_line_with_object_arguments() -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "x"}], "tools": [WEATHER]}
    reply = ollama_wire.ChatReply(body, Knobs(tool_call=True), "m", now=lambda: "t", rid="r")
    lines = [orjson.loads(x) for x in stream_all(reply).splitlines()]
    assert len(lines) == 2 and lines[0]["done"] is False and lines[1]["done"] is True
    call = lines[0]["message"]["tool_calls"][0]
    assert call["function"]["name"] == "get_weather" and call["function"]["arguments"]["location"] == "tok0"
    assert lines[1]["done_reason"] == "stop"
    whole = orjson.loads(ollama_wire.ChatReply({**body, "stream": False}, Knobs(tool_call=True), "m",
                                               now=lambda: "t", rid="r").full(0))
    assert whole["message"]["tool_calls"][0]["function"]["arguments"] == {"location": "tok0", "days": 1,
                                                                          "metric": True}


def test_anthropic_stream_framing_text() -> None:
    reply = anthropic_wire.MessagesReply({**ANTHROPIC, "stream": True}, Knobs(tokens=5), "claude", "r1", 0)
    seq = events(stream_all(reply))
    assert [t for t, _ in seq] == ["message_start", "content_block_start", "ping", "content_block_delta",
                                   "content_block_delta", "content_block_delta", "content_block_stop",
                                   "message_delta", "message_stop"]
    start = seq[0][1]["message"]
    assert start["id"] == "msg_r1" and start["usage"]["input_tokens"] == 5 and start["content"] == []
    assert "".join(d["delta"]["text"] for t, d in seq if t == "content_block_delta") == "tok0 tok1 tok2 "
    assert seq[7][1]["delta"]["stop_reason"] == "max_tokens" and seq[7][1]["usage"]["output_tokens"] == 3


def test_anthropic_tool_use_stream_and_json() -> None:
    body = {**ANTHROPIC, "tools": [{"name": "lookup", "input_schema": {"properties": {"q": {"type": "string"}}}}]}
    seq = events(stream_all(anthropic_wire.MessagesReply({**body, "stream": True}, Knobs(tool_call=True), "c", "r", 0)))
    assert seq[1][1]["content_block"] == {"type": "tool_use", "id": seq[1][1]["content_block"]["id"], "name": "lookup",
                                          "input": {}}
    partial = "".join(d["delta"]["partial_json"] for t, d in seq if t == "content_block_delta")
    assert orjson.loads(partial) == {"q": "tok0"}
    assert seq[-2][1]["delta"]["stop_reason"] == "tool_use"
    whole = orjson.loads(anthropic_wire.MessagesReply(body, Knobs(tool_call=True), "c", "r", 0).full(0))
    assert whole["content"][0]["type"] == "tool_use" and whole["stop_reason"] == "tool_use"
    text = orjson.loads(anthropic_wire.MessagesReply({**ANTHROPIC, "max_tokens": 100}, Knobs(tokens=2), "c", "r",
                                                     0).full(0))
    assert text["content"] == [{"type": "text", "text": "tok0 tok1 "}] and text["stop_reason"] == "end_turn"


@pytest.mark.parametrize(("body", "fragment"), [
    ({"model": "c", "messages": [{"role": "user", "content": "x"}]}, "max_tokens: Field required"),
    ({"model": "c", "max_tokens": 5, "messages": [{"role": "system", "content": "x"}]}, "messages.0.role"),
    ({"model": "c", "max_tokens": 5, "messages": []}, "at least one message"),
])
def test_anthropic_bad_requests(body: dict[str, Any], fragment: str) -> None:
    with pytest.raises(WireError) as caught:
        anthropic_wire.MessagesReply(body, Knobs(), "c", "r", 0)
    assert caught.value.status == 400 and fragment in caught.value.message


def test_anthropic_error_and_models_bodies() -> None:
    assert orjson.loads(anthropic_wire.error_body(529, "Overloaded")) == {
        "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    listing = orjson.loads(anthropic_wire.models_body(("a", "b"), "2025-01-01T00:00:00Z"))
    assert [m["id"] for m in listing["data"]] == ["a", "b"] and listing["has_more"] is False
