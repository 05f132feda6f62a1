"""Chunk.text() and Result.text(): what a NATS client prints instead of msgspec.Raw objects."""

from __future__ import annotations

import msgspec

from shared.messages import Chunk, Result


def _raw(obj: object) -> msgspec.Raw:
    return msgspec.Raw(msgspec.json.encode(obj))


def test_a_chunk_reads_as_the_text_of_every_object_it_carries() -> None:
    chunk = Chunk(attempt="a", seq=1, data=_raw({"choices": [{"delta": {"role": "assistant", "content": "Hel"}}]}),
                  more=(_raw({"choices": [{"delta": {"content": "lo"}}]}),
                        _raw({"choices": [{"delta": {}, "finish_reason": "stop"}]}),
                        _raw({"choices": [], "usage": {"total_tokens": 3}})))
    assert chunk.text() == "Hello"


def test_a_completion_chunk_reads_as_its_text() -> None:
    assert Chunk(attempt="a", seq=1, data=_raw({"choices": [{"text": "abc", "index": 0}]})).text() == "abc"


def test_a_result_reads_as_its_message_content_and_an_embedding_as_nothing() -> None:
    chat = Result(attempt="a", seq=2, data=_raw({"choices": [{"message": {"role": "assistant", "content": "Hi"}}]}))
    assert chat.text() == "Hi"
    assert Result(attempt="a", seq=2, data=_raw({"data": [{"embedding": [0.1]}]})).text() == ""
    assert Result(attempt="a", seq=2, data=_raw(None)).text() == ""
    tool_call = Result(attempt="a", seq=2, data=_raw({"choices": [{"message": {"content": None, "tool_calls": []}}]}))
    assert tool_call.text() == ""
