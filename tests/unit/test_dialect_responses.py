"""The Responses front door's translations and its store's logic, as plain function calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.gateway.dialects import Translated
from services.gateway.dialects import responses_store as store
from services.gateway.dialects.openai_objects import as_chunk
from services.gateway.dialects.responses import ResponsesDoor
from shared.config import Config, ModelMappingsFile, ModelSpec, ProviderSpec, RuntimeFile
from shared.errors import BadRequest, ClientError, UpstreamError

RID = "resp_" + "a" * 32
BASE: dict[str, Any] = {"model": "m", "input": "hi"}
WEATHER = {"type": "function", "name": "get_weather", "description": "The weather",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}


def configured(providers: dict[str, ProviderSpec] | None = None) -> Config:
    return Config(directory=Path("."), providers=providers or {}, mappings=ModelMappingsFile(), runtime=RuntimeFile())


def door(earlier: list[dict[str, Any]] | None = None, config: Config | None = None) -> ResponsesDoor:
    return ResponsesDoor(config or configured(), RID, 1700000000, earlier or [])


def parse(earlier: list[dict[str, Any]] | None = None, **changes: Any) -> Translated:
    return door(earlier).parse(json.dumps({**BASE, **changes}).encode())


def bad(**changes: Any) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse(**changes)
    return caught.value


# Requests: Responses → chat


def test_a_string_input_is_one_user_message() -> None:
    t = parse()
    assert t.kind == "chat" and t.native is None
    assert t.body == {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    assert t.notes["input"] == [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]
    assert t.notes["store"] is True and t.notes["response_id"] == RID


def test_every_input_item_type_becomes_chat_messages() -> None:
    items = [
        {"role": "developer", "content": "be brief"},
        {"type": "message", "role": "user", "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": "https://x/cat.png", "detail": "low"}]},
        {"type": "reasoning", "id": "rs_1", "summary": [], "content": [{"type": "reasoning_text", "text": "hm"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "calling"}]},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"city":"Rome"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "4C"},
        {"type": "function_call_output", "call_id": "c2", "output": [{"type": "input_text", "text": "20C"}]},
        {"role": "system", "content": [{"type": "input_text", "text": "end"}]},
    ]
    t = parse(input=items, instructions="you are terse")
    assert t.body["messages"] == [
        {"role": "system", "content": "you are terse"},
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": [
            {"type": "text", "text": "look"},
            {"type": "image_url", "image_url": {"url": "https://x/cat.png", "detail": "low"}}]},
        {"role": "assistant", "content": "calling", "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}},
            {"id": "c2", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Rome"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "4C"},
        {"role": "tool", "tool_call_id": "c2", "content": "20C"},
        {"role": "system", "content": "end"},
    ]
    assert t.notes["image_at"] == "input[1].content[1]"


def test_a_call_with_no_text_before_it_is_an_assistant_message_of_calls_only() -> None:
    t = parse(input=[{"type": "function_call", "call_id": "c1", "name": "f", "arguments": "{}"},
                     {"type": "function_call_output", "call_id": "c1", "output": "ok"}])
    assert t.body["messages"][0] == {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]}


def test_the_earlier_turn_comes_first_and_instructions_before_it() -> None:
    earlier = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "one"}]},
               {"type": "message", "id": "msg_x", "role": "assistant", "status": "completed",
                "content": [{"type": "output_text", "text": "two", "annotations": []}]}]
    t = parse(earlier, input="three", instructions="sys", previous_response_id=RID)
    assert t.body["messages"] == [{"role": "system", "content": "sys"}, {"role": "user", "content": "one"},
                                  {"role": "assistant", "content": "two"}, {"role": "user", "content": "three"}]
    assert t.notes["input"][:2] == earlier and len(t.notes["input"]) == 3
    assert "previous_response_id" not in t.body


def test_options_become_chat_fields() -> None:
    t = parse(tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"}, parallel_tool_calls=False,
              max_output_tokens=50, temperature=0.2, top_p=0.9, reasoning={"effort": "low"}, user="u1",
              text={"format": {"type": "json_schema", "name": "w", "schema": {"type": "object"}, "strict": True}},
              stream=True, store=False, include=["reasoning.encrypted_content"], truncation="auto", top_k=5)
    b = t.body
    assert b["tools"] == [{"type": "function", "function": {
        "name": "get_weather", "description": "The weather", "parameters": WEATHER["parameters"]}}]
    assert b["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert (b["parallel_tool_calls"], b["max_tokens"], b["temperature"], b["top_p"], b["reasoning_effort"],
            b["user"]) == (False, 50, 0.2, 0.9, "low", "u1")
    assert b["response_format"] == {"type": "json_schema",
                                    "json_schema": {"name": "w", "schema": {"type": "object"}, "strict": True}}
    assert b["stream"] is True and b["stream_options"] == {"include_usage": True}
    assert b["top_k"] == 5  # a field the Responses API does not define goes on, as on the chat path
    assert not {"include", "truncation", "store", "text", "max_output_tokens", "input"} & set(b)
    assert t.notes["store"] is False
    assert parse(text={"format": {"type": "json_object"}}).body["response_format"] == {"type": "json_object"}
    assert "response_format" not in parse(text={"format": {"type": "text"}}).body
    assert parse(tool_choice="none").body.get("tool_choice") is None  # no tools: nothing to choose


@pytest.mark.parametrize(("changes", "param"), [
    ({"model": ""}, "model"),
    ({"input": 3}, "input"),
    ({"input": [{"role": "robot", "content": "x"}]}, "input[0].role"),
    ({"input": [{"role": "user"}]}, "input[0].content"),
    ({"input": [{"role": "user", "content": [{"type": "input_file", "file_id": "f"}]}]}, "input[0].content[0].type"),
    ({"input": [{"role": "user", "content": [{"type": "input_image", "file_id": "f"}]}]},
     "input[0].content[0].file_id"),
    ({"input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "u"}]}]}, "input[0].content"),
    ({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}, "input[0].call_id"),
    ({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]}, "input[0].arguments"),
    ({"input": [{"type": "function_call_output", "call_id": "c", "output": 3}]}, "input[0].output"),
    ({"input": [{"type": "item_reference", "id": "x"}]}, "input[0].type"),
    ({"input": [{"type": "web_search_call"}]}, "input[0].type"),
    ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
    ({"tools": [{"type": "function"}]}, "tools[0].name"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
    ({"temperature": "hot"}, "temperature"),
    ({"text": {"format": {"type": "json_schema", "schema": {}}}}, "text.format.name"),
    ({"text": {"format": {"type": "xml"}}}, "text.format.type"),
    ({"background": True}, "background"),
    ({"conversation": "conv_1"}, "conversation"),
    ({"stream": "yes"}, "stream"),
    ({"instructions": 7}, "instructions"),
])
def test_a_bad_field_is_a_400_naming_it(changes: dict[str, Any], param: str) -> None:
    error = bad(**changes)
    assert error.param == param and error.status == 400 and param in error.message


def test_a_body_that_is_not_json_is_a_400() -> None:
    with pytest.raises(BadRequest):
        door().parse(b"{not json")


def test_images_to_a_model_configured_without_vision_are_a_400_naming_the_part() -> None:
    config = configured({"p": ProviderSpec(type="vllm", base_url="http://x",
                                           models={"m": ModelSpec(capabilities=("chat",))})})
    raw = json.dumps({**BASE, "input": [{"role": "user", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}]}).encode()
    with pytest.raises(BadRequest) as caught:
        door(config=config).parse(raw)
    assert caught.value.param == "input[0].content[0]"


# Whole answers: chat.completion → Response


def completion(message: dict[str, Any], finish: str = "stop", **usage: Any) -> bytes:
    return json.dumps({"id": "chatcmpl-1", "object": "chat.completion", "model": "backend-name",
                       "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                       "usage": {"prompt_tokens": 7, "completion_tokens": 5, "total_tokens": 12, **usage}}).encode()


def answer(message: dict[str, Any], finish: str = "stop", **request: Any) -> dict[str, Any]:
    d = door()
    t = d.parse(json.dumps({**BASE, **request}).encode())
    body = json.loads(d.result(t, completion(message, finish)))
    assert d.final == body
    return body


def test_a_text_answer_is_a_response_with_one_message() -> None:
    r = answer({"role": "assistant", "content": "Hello"}, instructions="sys", temperature=0.5, metadata={"k": "v"})
    assert (r["id"], r["object"], r["created_at"], r["status"], r["model"]) == (
        RID, "response", 1700000000, "completed", "m")
    assert r["output"] == [{"id": f"msg_{'a' * 32}_0", "type": "message", "status": "completed", "role": "assistant",
                            "content": [{"type": "output_text", "text": "Hello", "annotations": [], "logprobs": []}]}]
    assert r["usage"] == {"input_tokens": 7, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                          "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 12}
    assert (r["instructions"], r["temperature"], r["metadata"], r["store"], r["error"]) == (
        "sys", 0.5, {"k": "v"}, True, None)
    assert r["text"] == {"format": {"type": "text"}} and r["tool_choice"] == "auto" and r["tools"] == []


def test_reasoning_text_and_tool_calls_are_items_in_reading_order() -> None:
    r = answer({"role": "assistant", "content": "Let me check", "reasoning_content": "they want weather",
                "tool_calls": [{"id": "call_9", "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]},
               "tool_calls", tools=[WEATHER])
    assert [i["type"] for i in r["output"]] == ["reasoning", "message", "function_call"]
    assert r["output"][0]["content"] == [{"type": "reasoning_text", "text": "they want weather"}]
    assert r["output"][2] == {"id": f"fc_{'a' * 32}_2", "type": "function_call", "status": "completed",
                              "call_id": "call_9", "name": "get_weather", "arguments": '{"city":"Oslo"}'}
    assert r["status"] == "completed"


def test_a_capped_answer_is_incomplete() -> None:
    r = answer({"role": "assistant", "content": "Hel"}, "length", max_output_tokens=1)
    assert r["status"] == "incomplete" and r["incomplete_details"] == {"reason": "max_output_tokens"}
    assert r["output"][0]["status"] == "incomplete" and r["max_output_tokens"] == 1


def test_usage_details_are_read_when_the_backend_gives_them() -> None:
    d = door()
    t = d.parse(json.dumps(BASE).encode())
    data = completion({"role": "assistant", "content": "x"}, prompt_tokens_details={"cached_tokens": 3},
                      completion_tokens_details={"reasoning_tokens": 2})
    r = json.loads(d.result(t, data))
    assert r["usage"]["input_tokens_details"]["cached_tokens"] == 3
    assert r["usage"]["output_tokens_details"]["reasoning_tokens"] == 2


def test_errors_are_openai_error_json() -> None:
    body = json.loads(door().error(400, BadRequest("input: bad", param="input").body()))
    assert body == {"error": {"message": "input: bad", "type": "invalid_request_error", "param": "input",
                              "code": None}}


# Streams: chunks → events


def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    return json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "b",
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}).encode()


USAGE = json.dumps({"id": "chatcmpl-1", "object": "chat.completion.chunk", "choices": [],
                    "usage": {"prompt_tokens": 7, "completion_tokens": 3}}).encode()


def events(raw: bytes) -> list[dict[str, Any]]:
    out = []
    for block in raw.decode().split("\n\n"):
        if not block:
            continue
        name, data = block.split("\n")
        assert name.startswith("event: ") and data.startswith("data: ")
        event = json.loads(data[6:])
        assert event["type"] == name[7:]
        out.append(event)
    return out


def stream(payloads: list[bytes], **request: Any) -> tuple[ResponsesDoor, list[dict[str, Any]]]:
    d = door()
    t = d.parse(json.dumps({**BASE, "stream": True, **request}).encode())
    s = d.stream(t)
    raw = b"".join(s.chunks([p]) for p in payloads) + s.end(7, 3)
    said = events(raw)
    assert [e["sequence_number"] for e in said] == list(range(len(said)))
    return d, said


def test_a_text_stream_is_the_exact_event_sequence() -> None:
    d, said = stream([chunk({"role": "assistant", "content": ""}), chunk({"content": "Hel"}),
                      chunk({"content": "lo"}), chunk({}, "stop"), USAGE])
    assert [e["type"] for e in said] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
        "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
        "response.content_part.done", "response.output_item.done", "response.completed"]
    assert said[0]["response"]["status"] == "in_progress" and said[0]["response"]["output"] == []
    added = said[2]
    assert added["item"] == {"id": f"msg_{'a' * 32}_0", "type": "message", "status": "in_progress",
                             "role": "assistant", "content": []}
    assert said[3]["part"] == {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
    assert [e["delta"] for e in said[4:6]] == ["Hel", "lo"]
    assert all(e["item_id"] == added["item"]["id"] and e["output_index"] == 0 for e in said[3:8])
    assert said[6]["text"] == "Hello" and said[7]["part"]["text"] == "Hello"
    assert said[8]["item"]["status"] == "completed" and said[8]["item"]["content"][0]["text"] == "Hello"
    final = said[9]["response"]
    assert final["status"] == "completed" and final["output"] == [said[8]["item"]]
    assert final["usage"]["input_tokens"] == 7 and final["usage"]["output_tokens"] == 3
    assert final["usage"]["total_tokens"] == 10 and d.final == final


def test_a_streamed_function_call_is_its_own_item_with_argument_deltas() -> None:
    _, said = stream([chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                             "function": {"name": "get_weather", "arguments": '{"ci'}}]}),
                      chunk({"tool_calls": [{"index": 0, "function": {"arguments": 'ty":"Oslo"}'}}]}),
                      chunk({"tool_calls": [{"index": 1, "id": "call_2", "type": "function",
                                             "function": {"name": "get_time", "arguments": "{}"}}]}),
                      chunk({}, "tool_calls")], tools=[WEATHER])
    assert [e["type"] for e in said] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.delta", "response.function_call_arguments.done", "response.output_item.done",
        "response.output_item.added", "response.function_call_arguments.delta",
        "response.function_call_arguments.done", "response.output_item.done", "response.completed"]
    assert said[2]["item"] == {"id": f"fc_{'a' * 32}_0", "type": "function_call", "status": "in_progress",
                               "call_id": "call_1", "name": "get_weather", "arguments": ""}
    assert said[5]["arguments"] == '{"city":"Oslo"}' and said[5]["name"] == "get_weather"
    assert said[6]["item"]["arguments"] == '{"city":"Oslo"}' and said[6]["item"]["status"] == "completed"
    assert said[7]["output_index"] == 1 and said[7]["item"]["call_id"] == "call_2"
    assert [i["type"] for i in said[-1]["response"]["output"]] == ["function_call", "function_call"]


def test_reasoning_text_streams_as_a_reasoning_item_before_the_message() -> None:
    _, said = stream([chunk({"reasoning_content": "think"}), chunk({"reasoning_content": "ing"}),
                      chunk({"content": "Answer"}), chunk({}, "stop")])
    assert [e["type"] for e in said] == [
        "response.created", "response.in_progress",
        "response.output_item.added", "response.content_part.added", "response.reasoning_text.delta",
        "response.reasoning_text.delta", "response.reasoning_text.done", "response.content_part.done",
        "response.output_item.done",
        "response.output_item.added", "response.content_part.added", "response.output_text.delta",
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed"]
    assert said[2]["item"]["type"] == "reasoning" and said[3]["part"] == {"type": "reasoning_text", "text": ""}
    assert said[6]["text"] == "thinking"
    assert said[8]["item"]["content"] == [{"type": "reasoning_text", "text": "thinking"}]
    assert said[9]["output_index"] == 1


def test_a_capped_stream_ends_incomplete() -> None:
    _, said = stream([chunk({"content": "x"}), chunk({}, "length")], max_output_tokens=1)
    assert said[-1]["type"] == "response.incomplete"
    assert said[-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}
    assert said[-2]["item"]["status"] == "incomplete"


def test_a_stream_that_said_nothing_still_opens_and_completes() -> None:
    _, said = stream([])
    assert [e["type"] for e in said] == ["response.created", "response.in_progress", "response.completed"]


def test_a_failure_mid_stream_is_an_error_event_then_response_failed_and_nothing_more() -> None:
    d = door()
    t = d.parse(json.dumps({**BASE, "stream": True}).encode())
    s = d.stream(t)
    raw = s.chunks([chunk({"content": "Hel"})]) + s.error(502, UpstreamError("the backend went away").body())
    said = events(raw)
    assert [e["type"] for e in said][-5:] == [
        "response.output_text.done", "response.content_part.done", "response.output_item.done", "error",
        "response.failed"]
    assert said[-2] == {"type": "error", "sequence_number": said[-2]["sequence_number"], "code": "upstream_error",
                        "message": "the backend went away", "param": None}
    failed = said[-1]["response"]
    assert failed["status"] == "failed" and failed["error"] == {"code": "server_error",
                                                                 "message": "the backend went away"}
    assert failed["output"][0]["status"] == "incomplete" and d.final is None


def test_a_stream_answered_whole_and_a_cached_stream_read_like_any_stream() -> None:
    data = completion({"role": "assistant", "content": "Hello"})
    _, said = stream([as_chunk(data)])
    assert said[-1]["response"]["output"][0]["content"][0]["text"] == "Hello"


# The store's logic


def test_entries_are_kept_only_when_asked_and_finished() -> None:
    notes = {"store": True, "input": [{"type": "message", "role": "user", "content": "hi"}]}
    final = {"id": RID, "status": "completed", "output": [{"type": "message", "role": "assistant",
                                                           "content": [{"type": "output_text", "text": "yo"}]}]}
    value = store.entry("key:1", notes, final)
    assert value is not None
    kept = store.visible(value, "key:1", RID)
    assert kept.response == final
    assert store.earlier_items(kept) == [*notes["input"], *final["output"]]
    assert store.entry("key:1", {**notes, "store": False}, final) is None
    assert store.entry("key:1", notes, {**final, "status": "failed"}) is None
    assert store.entry("key:1", notes, None) is None


def test_another_tenant_a_missing_entry_and_a_malformed_id_are_the_same_404() -> None:
    value = store.entry("key:1", {"store": True, "input": []}, {"id": RID, "status": "completed", "output": []})
    for data, tenant in ((value, "key:2"), (None, "key:1"), (b"garbage", "key:1")):
        with pytest.raises(ClientError) as caught:
            store.visible(data, tenant, RID, "previous_response_id")
        assert caught.value.status == 404 and caught.value.param == "previous_response_id"
    for wrong in ("resp_x", "resp_" + "a" * 31 + ".", "msg_" + "a" * 32, "resp_" + "A" * 32, "../x"):
        with pytest.raises(ClientError):
            store.key(wrong)
    assert store.key(RID) == RID and store.key(store.new_id()).startswith("resp_")


def test_a_deleted_answer_says_so() -> None:
    assert json.loads(store.deleted(RID)) == {"id": RID, "object": "response", "deleted": True}


def test_delta_events_carry_exactly_the_fields_of_each_kind_in_order() -> None:
    """Delta events are written from bytes made once per item: the same fields as every other event
    (`stream` checks their sequence numbers)."""
    _, said = stream([chunk({"reasoning_content": 'th"in\nk'}), chunk({"content": "Ans é"}),
                      chunk({"tool_calls": [{"index": 0, "id": "call_1", "type": "function",
                                             "function": {"name": "get_weather", "arguments": '{"ci'}}]}),
                      chunk({}, "tool_calls")], tools=[WEATHER])
    deltas = [{k: v for k, v in e.items() if k != "sequence_number"} for e in said if e["type"].endswith(".delta")]
    assert deltas == [
        {"type": "response.reasoning_text.delta", "item_id": f"rs_{'a' * 32}_0", "output_index": 0,
         "content_index": 0, "delta": 'th"in\nk'},
        {"type": "response.output_text.delta", "item_id": f"msg_{'a' * 32}_1", "output_index": 1,
         "content_index": 0, "delta": "Ans é", "logprobs": []},
        {"type": "response.function_call_arguments.delta", "item_id": f"fc_{'a' * 32}_2", "output_index": 2,
         "delta": '{"ci'}]
    assert [list(e) for e in said if e["type"] == "response.output_text.delta"] == [
        ["type", "sequence_number", "item_id", "output_index", "content_index", "delta", "logprobs"]]
