"""The simulator's `reasoning` knob (openai flavor): vLLM's reasoning_content before the answer."""

from __future__ import annotations

import json
from typing import Any

from services.simulator.knobs import Knobs, merge
from services.simulator.openai_wire import THOUGHT, ChatReply

BODY = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def _sse(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[6:]) for line in raw.decode().split("\n\n") if line.startswith("data: {")]


def test_a_whole_reply_reasons_first_and_counts_the_reasoning() -> None:
    reply = ChatReply(BODY, Knobs(tokens=2, reasoning=True), "m", "r1", 0)
    body = json.loads(reply.full(0))
    message = body["choices"][0]["message"]
    assert message["reasoning_content"] == "".join(THOUGHT) and message["content"] == "tok0 tok1 "
    assert body["usage"]["completion_tokens"] == 2 + len(THOUGHT)


def test_a_stream_sends_reasoning_chunks_after_the_role_chunk() -> None:
    reply = ChatReply({**BODY, "stream": True}, Knobs(tokens=2, reasoning=True), "m", "r1", 0)
    deltas = [c["choices"][0]["delta"] for c in _sse(reply.prelude())]
    assert deltas == [{"role": "assistant", "content": ""}, *({"reasoning_content": w} for w in THOUGHT)]
    assert _sse(reply.event(0))[0]["choices"][0]["delta"] == {"content": "tok0 "}


def test_off_by_default_and_settable_per_request() -> None:
    assert "reasoning_content" not in json.loads(ChatReply(BODY, Knobs(), "m", "r", 0).full(0))["choices"][0]["message"]
    assert merge(Knobs(), {"reasoning": True}).reasoning is True
