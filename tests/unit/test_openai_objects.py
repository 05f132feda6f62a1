"""Reading OpenAI objects for the front doors (services/gateway/dialects/openai_objects.py): the
typed fast path says exactly what the loose reading says, for well-formed and odd objects alike."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.gateway.dialects.openai_objects import Piece, _read_loosely, read

ODD = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=False, width=16),
                st.text(max_size=3), st.lists(st.integers(0, 2), max_size=2), st.dictionaries(st.text(max_size=2),
                                                                                          st.integers(), max_size=1))


def maybe(value: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(value, ODD)


FUNCTION = st.fixed_dictionaries({}, optional={"name": maybe(st.text(max_size=4)),
                                               "arguments": maybe(st.text(max_size=6))})
CALL = st.fixed_dictionaries({}, optional={"index": maybe(st.integers(0, 3)), "id": maybe(st.text(max_size=4)),
                                           "function": maybe(FUNCTION), "type": st.just("function")})
MESSAGE = st.fixed_dictionaries({}, optional={
    "role": st.just("assistant"), "content": maybe(st.text(max_size=6)),
    "reasoning_content": maybe(st.text(max_size=4)), "reasoning": maybe(st.text(max_size=4)),
    "tool_calls": maybe(st.lists(maybe(CALL), max_size=2))})
CHOICE = st.fixed_dictionaries({}, optional={"index": st.just(0), "delta": maybe(MESSAGE), "message": maybe(MESSAGE),
                                             "text": maybe(st.text(max_size=4)),
                                             "finish_reason": maybe(st.sampled_from(["stop", "length", "tool_calls"]))})
USAGE = st.fixed_dictionaries({}, optional={"prompt_tokens": maybe(st.integers(0, 99)),
                                            "completion_tokens": maybe(st.integers(0, 99))})
OBJECT = st.fixed_dictionaries({}, optional={"id": maybe(st.text(max_size=4)), "model": maybe(st.text(max_size=4)),
                                             "object": st.just("chat.completion.chunk"),
                                             "choices": maybe(st.lists(maybe(CHOICE), max_size=2)),
                                             "usage": maybe(USAGE)})


@settings(max_examples=400, deadline=None)
@given(OBJECT)
def test_the_fast_reading_agrees_with_the_loose_one(obj: dict[str, Any]) -> None:
    data = msgspec.json.encode(obj)
    assert read(data) == _read_loosely(data)


@pytest.mark.parametrize("choice", [
    {"delta": {"role": "assistant"}, "message": {"content": "x"}}, {"delta": {}, "message": {"content": "x"}},
    {"delta": {"refusal": None}, "message": {"content": "x"}, "text": "t"}, {"delta": {}, "text": "t"}])
def test_a_choice_with_both_delta_and_message_reads_as_the_loose_reading_does(choice: dict[str, Any]) -> None:
    data = msgspec.json.encode({"choices": [choice]})
    assert read(data) == _read_loosely(data)


def test_a_streamed_tool_call_and_usage() -> None:
    call = {"index": 1, "id": "call_1", "function": {"name": "read_file", "arguments": "{\"pa"}}
    chunk = {"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}],
        "usage": {"prompt_tokens": 9, "completion_tokens": 2}, "model": "m", "id": "c1"}
    piece = read(msgspec.json.encode(chunk))
    assert piece.tool_calls[0].index == 1 and piece.tool_calls[0].name == "read_file"
    assert piece.tool_calls[0].arguments == "{\"pa"
    assert (piece.prompt_tokens, piece.completion_tokens, piece.model, piece.id) == (9, 2, "m", "c1")


def test_arguments_sent_as_an_object_are_read_as_their_json_text() -> None:
    whole = {"choices": [{"message": {"tool_calls": [{"function": {"name": "f", "arguments": {"a": 1}}}]}}]}
    assert read(msgspec.json.encode(whole)).tool_calls[0].arguments == '{"a":1}'


def test_a_body_that_is_not_json_is_a_decode_error() -> None:
    with pytest.raises(msgspec.DecodeError):
        read(b"{not json")
    assert read(b"[1, 2]") == Piece()
