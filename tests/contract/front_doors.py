"""The three front doors, each driven by its own client library, said in the contract's terms.

A `Door` asks the gateway what the front-door contract checks (test_front_door_contract.py), in
its dialect and through its client (the `anthropic` SDK, the `openai` SDK's Responses client, the
`ollama` library), and reports what the client got in common terms: the text, the usage, the
tool calls, the status and words of an error. What the contract asserts is written once.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import Any, Protocol

import anthropic
import ollama
import openai
import pytest

_counter = itertools.count()


def fresh(text: str = "Hello") -> str:
    """Something not asked before: no answer comes from the response cache."""
    return f"{text} #{next(_counter)}"


@dataclass(frozen=True)
class Said:
    text: str
    input_tokens: int
    output_tokens: int


@dataclass(frozen=True)
class Called:
    calls: list[tuple[str, Any]]  # (name, arguments as an object) of the answer that called
    streamed: list[tuple[str, Any]]  # the same asked again, streamed
    answer: str  # the text of the turn after the call's result went back


@dataclass(frozen=True)
class Refused:
    status: int
    said: str  # what the client can read of the error: its message (and param, where the dialect has one)


class Door(Protocol):
    id: str
    bad_field: str  # the field `refuse_a_bad_field` gets wrong, as the dialect names it

    def text(self, model: str) -> Said: ...
    def stream(self, model: str) -> Said: ...
    def tool_round_trip(self, model: str) -> Called: ...
    def refuse_a_bad_field(self, model: str) -> Refused: ...
    def unknown_model(self) -> Refused: ...
    def close(self) -> None: ...


class AnthropicDoor:
    id = "anthropic"
    bad_field = "messages.0.role"
    WEATHER: Any = {"name": "get_weather", "description": "The weather in a city", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}

    def __init__(self, url: str, key: str) -> None:
        self.sdk = anthropic.Anthropic(base_url=url, api_key=key, max_retries=0, timeout=20)

    def _ask(self, text: str = "Hello") -> list[Any]:
        return [{"role": "user", "content": fresh(text)}]

    def text(self, model: str) -> Said:
        reply = self.sdk.messages.create(model=model, max_tokens=100, messages=self._ask(), system="be brief")
        assert reply.type == "message" and reply.model == model and reply.stop_reason == "end_turn"
        text = "".join(b.text for b in reply.content if b.type == "text")
        return Said(text, reply.usage.input_tokens, reply.usage.output_tokens)

    def stream(self, model: str) -> Said:
        with self.sdk.messages.stream(model=model, max_tokens=100, messages=self._ask()) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
        assert final.stop_reason == "end_turn"
        return Said(text, final.usage.input_tokens, final.usage.output_tokens)

    def tool_round_trip(self, model: str) -> Called:
        asked = self._ask("Weather in Oslo?")
        call = self.sdk.messages.create(model=model, max_tokens=100, messages=asked, tools=[self.WEATHER],
                                        tool_choice={"type": "tool", "name": "get_weather"})
        assert call.stop_reason == "tool_use"
        uses = [b for b in call.content if b.type == "tool_use"]
        follow_up = [*asked, {"role": "assistant", "content": [b.model_dump() for b in call.content]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": u.id, "content": "4C"}
                                                  for u in uses]}]
        answer = self.sdk.messages.create(model=model, max_tokens=100, messages=follow_up)
        with self.sdk.messages.stream(model=model, max_tokens=100, messages=self._ask("Weather?"),
                                      tools=[self.WEATHER]) as stream:
            final = stream.get_final_message()
        assert final.stop_reason == "tool_use"
        return Called([(u.name, u.input) for u in uses],
                      [(b.name, b.input) for b in final.content if b.type == "tool_use"],
                      "".join(b.text for b in answer.content if b.type == "text"))

    def refuse_a_bad_field(self, model: str) -> Refused:
        with pytest.raises(anthropic.APIStatusError) as caught:
            self.sdk.messages.create(model=model, max_tokens=10, messages=[{"role": "system", "content": "x"}])
        body = caught.value.body
        assert isinstance(body, dict) and body["type"] == "error", body
        return Refused(caught.value.status_code, body["error"]["message"])

    def unknown_model(self) -> Refused:
        with pytest.raises(anthropic.APIStatusError) as caught:
            self.sdk.messages.create(model="no-such-model", max_tokens=10, messages=self._ask())
        body = caught.value.body
        assert isinstance(body, dict) and body["error"]["type"] == "not_found_error", body
        return Refused(caught.value.status_code, body["error"]["message"])

    def close(self) -> None:
        self.sdk.close()


class ResponsesDoor:
    id = "responses"
    bad_field = "tools[0].type"
    WEATHER: Any = {"type": "function", "name": "get_weather", "description": "The weather in a city",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                   "required": ["city"]}}

    def __init__(self, url: str, key: str) -> None:
        self.sdk = openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0, timeout=20)

    def text(self, model: str) -> Said:
        r = self.sdk.responses.create(model=model, input=fresh(), instructions="be brief")
        assert r.object == "response" and r.status == "completed" and r.model == model and r.usage is not None
        assert r.usage.total_tokens == r.usage.input_tokens + r.usage.output_tokens
        return Said(r.output_text, r.usage.input_tokens, r.usage.output_tokens)

    def stream(self, model: str) -> Said:
        events = list(self.sdk.responses.create(model=model, input=fresh(), stream=True))
        assert [e.sequence_number for e in events] == list(range(len(events)))
        final = events[-1]
        assert final.type == "response.completed" and final.response.usage is not None
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert final.response.output_text == text
        return Said(text, final.response.usage.input_tokens, final.response.usage.output_tokens)

    def tool_round_trip(self, model: str) -> Called:
        call = self.sdk.responses.create(model=model, input=fresh("Weather in Oslo?"), tools=[self.WEATHER],
                                         tool_choice={"type": "function", "name": "get_weather"})
        calls = [i for i in call.output if i.type == "function_call"]
        answer = self.sdk.responses.create(model=model, previous_response_id=call.id, input=[
            {"type": "function_call_output", "call_id": c.call_id, "output": "4C"} for c in calls])
        events = list(self.sdk.responses.create(model=model, input=fresh("Weather?"), tools=[self.WEATHER],
                                                stream=True))
        final = events[-1]
        assert final.type == "response.completed"
        streamed = [i for i in final.response.output if i.type == "function_call"]
        deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
        assert [i.arguments for i in streamed] == [deltas]
        return Called([(c.name, json.loads(c.arguments)) for c in calls],
                      [(i.name, json.loads(i.arguments)) for i in streamed], answer.output_text)

    def refuse_a_bad_field(self, model: str) -> Refused:
        with pytest.raises(openai.APIStatusError) as caught:
            self.sdk.responses.create(model=model, input=fresh(), tools=[{"type": "web_search"}])
        return Refused(caught.value.status_code, f"{getattr(caught.value, 'param', None)}: {caught.value.message}")

    def unknown_model(self) -> Refused:
        with pytest.raises(openai.APIStatusError) as caught:
            self.sdk.responses.create(model="no-such-model", input=fresh())
        return Refused(caught.value.status_code, caught.value.message)

    def close(self) -> None:
        self.sdk.close()


class OllamaDoor:
    id = "ollama"
    bad_field = "options.temperature"
    WEATHER: Any = {"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "required": ["city"], "properties": {"city": {"type": "string"}}}}}

    def __init__(self, url: str, key: str) -> None:
        # What an Ollama client does with OLLAMA_HOST and OLLAMA_API_KEY set.
        self.sdk = ollama.Client(host=url, timeout=20, trust_env=False, headers={"authorization": f"Bearer {key}"})

    def _ask(self, text: str = "Hello") -> list[Any]:
        return [{"role": "user", "content": fresh(text)}]

    def text(self, model: str) -> Said:
        reply = self.sdk.chat(model=model, messages=self._ask())
        assert reply.model == model and reply.done and reply.done_reason == "stop"
        assert reply.message.role == "assistant" and reply.total_duration
        return Said(reply.message.content or "", reply.prompt_eval_count or 0, reply.eval_count or 0)

    def stream(self, model: str) -> Said:
        parts = list(self.sdk.chat(model=model, messages=self._ask(), stream=True))
        assert [p.done for p in parts] == [False] * (len(parts) - 1) + [True]
        last = parts[-1]
        return Said("".join(p.message.content or "" for p in parts), last.prompt_eval_count or 0,
                    last.eval_count or 0)

    def tool_round_trip(self, model: str) -> Called:
        messages: list[Any] = self._ask("Weather in Oslo?")
        first = self.sdk.chat(model=model, messages=messages, tools=[self.WEATHER])
        calls = first.message.tool_calls or []
        messages += [first.message, {"role": "tool", "tool_name": "get_weather", "content": "4C"}]
        answer = self.sdk.chat(model=model, messages=messages)  # offered tools, a simulator calls again
        assert not answer.message.tool_calls
        parts = list(self.sdk.chat(model=model, messages=self._ask("Weather?"), tools=[self.WEATHER], stream=True))
        assert parts[-1].done
        streamed = [c for p in parts for c in p.message.tool_calls or ()]
        return Called([(c.function.name, dict(c.function.arguments)) for c in calls],
                      [(c.function.name, dict(c.function.arguments)) for c in streamed], answer.message.content or "")

    def refuse_a_bad_field(self, model: str) -> Refused:
        with pytest.raises(ollama.ResponseError) as caught:
            self.sdk.chat(model=model, messages=self._ask(), options={"temperature": "hot"})
        return Refused(caught.value.status_code, caught.value.error)

    def unknown_model(self) -> Refused:
        with pytest.raises(ollama.ResponseError) as caught:
            self.sdk.chat(model="no-such-model", messages=self._ask())
        return Refused(caught.value.status_code, caught.value.error)

    def close(self) -> None:
        self.sdk._client.close()


DOORS: list[type[AnthropicDoor] | type[ResponsesDoor] | type[OllamaDoor]] = [AnthropicDoor, ResponsesDoor, OllamaDoor]
