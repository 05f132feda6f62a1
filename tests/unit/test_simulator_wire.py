"""Pure tests of the simulator's knobs and wire builders: no sockets, no event loop."""

from __future__ import annotations

import base64
import math
import struct
from typing import Any

import orjson
import pytest

from services.simulator import ollama_wire, openai_wire
from services.simulator.knobs import Knobs, count_tokens, merge, parse_overrides, script
from services.simulator.openai_wire import WireError

CHAT = {"model": "m", "messages": [{"role": "system", "content": "be brief"},
                                   {"role": "user", "content": "hello big world"}]}


def sse_events(raw: bytes) -> list[Any]:
    """Split an SSE byte string into decoded data payloads ("[DONE]" kept as a string)."""
    out: list[Any] = []
    for block in raw.split(b"\n\n"):
        if not block:
            continue
        assert block.startswith(b"data: "), block
        data = block[len(b"data: "):]
        out.append("[DONE]" if data == b"[DONE]" else orjson.loads(data))
    return out


def stream_all(reply: Any) -> bytes:
    parts: list[bytes] = [reply.prelude(), *(reply.event(i) for i in range(reply.n)),
                          reply.tail(1000)]
    return b"".join(parts)


# ----------------------------------------------------------------------------- knobs
def test_knob_defaults() -> None:
    k = Knobs()
    assert (k.tokens, k.ttft_ms, k.itl_ms, k.error_rate, k.error_status) == (16, 0.0, 0.0, 0.0, 500)
    assert (k.retry_after, k.hang, k.drop_after, k.echo) == (None, False, None, False)
    assert not k.delayed


def test_merge_applies_overrides_and_keeps_base() -> None:
    base = Knobs(tokens=4)
    k = merge(base, {"ttft_ms": 50, "drop_after": 3, "echo": True, "retry_after": 1.5})
    assert (k.tokens, k.ttft_ms, k.drop_after, k.echo, k.retry_after) == (4, 50.0, 3, True, 1.5)
    assert isinstance(k.ttft_ms, float) and k.delayed
    assert base == Knobs(tokens=4)
    assert merge(k, {"drop_after": None}).drop_after is None


@pytest.mark.parametrize(("overrides", "fragment"), [
    ({"tokenz": 1}, "unknown simulator knob 'tokenz'"),
    ({"tokens": -1}, "'tokens' must be in"),
    ({"tokens": 2.5}, "'tokens' must be an integer"),
    ({"tokens": True}, "'tokens' must be an integer"),
    ({"error_rate": 1.5}, "'error_rate' must be in"),
    ({"error_rate": "0.5"}, "'error_rate' must be a number"),
    ({"error_status": 200}, "'error_status' must be in"),
    ({"ttft_ms": float("nan")}, "'ttft_ms' must be in"),
    ({"hang": 1}, "'hang' must be true or false"),
    ({"drop_after": -2}, "'drop_after' must be in"),
])
def test_merge_rejects_bad_values(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment.replace("(", r"\(")):
        merge(Knobs(), overrides)


def test_merge_rejects_non_object() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        merge(Knobs(), [1, 2])  # type: ignore[arg-type]


def test_parse_overrides_header() -> None:
    assert parse_overrides(b'{"tokens": 2}') == {"tokens": 2}
    with pytest.raises(ValueError, match="not valid JSON"):
        parse_overrides(b"{tokens")
    with pytest.raises(ValueError, match="must be a JSON object"):
        parse_overrides(b"[1]")


def test_script_filler_and_cap() -> None:
    s = script(Knobs(tokens=3), None)
    assert (s.n, s.finish_reason, s.text()) == (3, "stop", "tok0 tok1 tok2 ")
    capped = script(Knobs(tokens=5), 2)
    assert (capped.n, capped.finish_reason, capped.text()) == (2, "length", "tok0 tok1 ")
    # a cap that does not cut the reply short is not "length"
    assert script(Knobs(tokens=5), 5).finish_reason == "stop"


def test_script_echo_reproduces_text_and_caps() -> None:
    s = script(Knobs(echo=True), None, "say  this\tback ")
    assert s.text() == "say  this\tback "
    assert [s.piece(i) for i in range(s.n)] == ["say  ", "this\t", "back "]
    assert script(Knobs(echo=True), 1, "a b c").text() == "a "


def test_count_tokens_is_word_count_at_least_one() -> None:
    assert count_tokens("a b  c") == 3
    assert count_tokens("") == 1


# ----------------------------------------------------------------------------- OpenAI
def test_chat_completion_json_shape() -> None:
    r = openai_wire.ChatReply(CHAT, Knobs(tokens=3), "m", "abc", 1700)
    assert not r.stream and r.content_type == openai_wire.JSON
    body = orjson.loads(r.full(0))
    assert body == {
        "id": "chatcmpl-abc", "object": "chat.completion", "created": 1700, "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "tok0 tok1 tok2 "},
                     "logprobs": None, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}}


def test_chat_stream_chunk_sequence_with_usage() -> None:
    req = {**CHAT, "stream": True, "stream_options": {"include_usage": True}, "max_tokens": 2}
    r = openai_wire.ChatReply(req, Knobs(tokens=4), "m", "x", 1)
    assert r.stream and r.content_type.startswith(b"text/event-stream")
    events = sse_events(stream_all(r))
    assert events[-1] == "[DONE]"
    chunks = events[:-1]
    assert all(c["object"] == "chat.completion.chunk" and c["id"] == "chatcmpl-x" for c in chunks)
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert [c["choices"][0]["delta"] for c in chunks[1:3]] == [{"content": "tok0 "},
                                                               {"content": "tok1 "}]
    assert chunks[3]["choices"][0] == {"index": 0, "delta": {}, "logprobs": None,
                                       "finish_reason": "length"}
    assert chunks[4]["choices"] == []
    assert chunks[4]["usage"] == {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}
    assert all("usage" not in c for c in chunks[:4])


def test_chat_stream_without_usage_has_no_usage_chunk() -> None:
    r = openai_wire.ChatReply({**CHAT, "stream": True}, Knobs(tokens=1), "m", "x", 1)
    events = sse_events(stream_all(r))
    assert len(events) == 4  # role, token, finish, [DONE]
    assert events[2]["choices"][0]["finish_reason"] == "stop"


def test_max_completion_tokens_wins_over_max_tokens() -> None:
    req = {**CHAT, "max_completion_tokens": 1, "max_tokens": 10}
    body = orjson.loads(openai_wire.ChatReply(req, Knobs(), "m", "x", 1).full(0))
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 1


@pytest.mark.parametrize(("body", "param"), [
    ({"model": "m"}, "messages"),
    ({"messages": []}, "messages"),
    ({**CHAT, "max_tokens": 0}, "max_tokens"),
    ({**CHAT, "max_tokens": "5"}, "max_tokens"),
    ({**CHAT, "stream_options": {"include_usage": True}}, "stream_options"),
    ({**CHAT, "stream": "yes"}, "stream"),
])
def test_chat_bad_requests(body: dict[str, Any], param: str) -> None:
    with pytest.raises(WireError) as info:
        openai_wire.ChatReply(body, Knobs(), "m", "x", 1)
    assert info.value.status == 400 and info.value.param == param


def test_chat_echo_uses_last_user_message_content_parts() -> None:
    req = {"messages": [{"role": "user", "content": "first"}, {"role": "assistant", "content": "x"},
                        {"role": "user", "content": [{"type": "text", "text": "echo me"}]}]}
    body = orjson.loads(openai_wire.ChatReply(req, Knobs(echo=True), "m", "x", 1).full(0))
    assert body["choices"][0]["message"]["content"] == "echo me"


def test_completions_list_prompt_json_and_stream() -> None:
    req = {"model": "m", "prompt": ["one two", "three"], "max_tokens": 2}
    r = openai_wire.CompletionReply(req, Knobs(tokens=3), "m", "c", 5)
    body = orjson.loads(r.full(0))
    assert body["object"] == "text_completion" and body["id"] == "cmpl-c"
    assert [(c["index"], c["text"], c["finish_reason"]) for c in body["choices"]] == [
        (0, "tok0 tok1 ", "length"), (1, "tok0 tok1 ", "length")]
    assert body["usage"] == {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}

    s = openai_wire.CompletionReply({**req, "stream": True, "stream_options": {"include_usage": True}},
                                    Knobs(tokens=3), "m", "c", 5)
    events = sse_events(stream_all(s))
    texts = [(e["choices"][0]["index"], e["choices"][0]["text"]) for e in events[:4]]
    assert texts == [(0, "tok0 "), (1, "tok0 "), (0, "tok1 "), (1, "tok1 ")]
    assert {e["choices"][0]["finish_reason"] for e in events[4:6]} == {"length"}
    assert events[6]["choices"] == [] and events[6]["usage"]["completion_tokens"] == 4
    assert events[7] == "[DONE]"


def test_completions_token_array_prompt() -> None:
    r = openai_wire.CompletionReply({"prompt": [1, 2, 3]}, Knobs(tokens=1), "m", "c", 5)
    assert orjson.loads(r.full(0))["usage"]["prompt_tokens"] == 3
    with pytest.raises(WireError):
        openai_wire.CompletionReply({"prompt": []}, Knobs(), "m", "c", 5)


def test_embeddings_deterministic_unit_vectors() -> None:
    r = openai_wire.EmbeddingReply({"input": ["a", "b", "a"]}, Knobs(), "e", "id", 1)
    body = orjson.loads(r.full(0))
    assert body["object"] == "list" and body["model"] == "e"
    vecs = [d["embedding"] for d in body["data"]]
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert all(d["object"] == "embedding" for d in body["data"])
    assert len(vecs[0]) == openai_wire.DEFAULT_DIMENSIONS
    assert vecs[0] == vecs[2] and vecs[0] != vecs[1]
    assert math.isclose(sum(v * v for v in vecs[1]), 1.0, rel_tol=1e-9)
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}


def test_embeddings_base64_dimensions_and_token_arrays() -> None:
    req = {"input": [[5, 6], [7]], "encoding_format": "base64", "dimensions": 20}
    body = orjson.loads(openai_wire.EmbeddingReply(req, Knobs(), "e", "id", 1).full(0))
    raw = base64.b64decode(body["data"][0]["embedding"])
    decoded = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert len(decoded) == 20
    expected = openai_wire.embed_vector("5 6", 20)
    assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(decoded, expected, strict=True))
    assert body["usage"]["prompt_tokens"] == 3


@pytest.mark.parametrize("body", [{}, {"input": 5}, {"input": "x", "dimensions": 0},
                                  {"input": "x", "encoding_format": "hex"}])
def test_embeddings_bad_requests(body: dict[str, Any]) -> None:
    with pytest.raises(WireError) as info:
        openai_wire.EmbeddingReply(body, Knobs(), "e", "id", 1)
    assert info.value.status == 400


def test_error_bodies_vllm_and_ollama_v1() -> None:
    err = openai_wire.model_not_found("gpt-x")
    assert err.status == 404
    assert orjson.loads(openai_wire.error_body(err.status, err.message, err.param)) == {
        "error": {"message": "The model `gpt-x` does not exist.", "type": "NotFoundError",
                  "param": "model", "code": 404}}
    assert orjson.loads(openai_wire.error_body(400, "bad"))["error"]["type"] == "BadRequestError"
    assert orjson.loads(openai_wire.error_body(502, "x"))["error"]["type"] == "BadGatewayError"
    v1 = orjson.loads(openai_wire.error_body(404, "nope", ollama=True))["error"]
    assert (v1["type"], v1["code"]) == ("not_found_error", None)


def test_models_body() -> None:
    body = orjson.loads(openai_wire.models_body(("a", "b"), 7))
    assert body == {"object": "list", "data": [
        {"id": "a", "object": "model", "created": 7, "owned_by": "vllm"},
        {"id": "b", "object": "model", "created": 7, "owned_by": "vllm"}]}


# ----------------------------------------------------------------------------- Ollama
def fixed_clock() -> str:
    return "2024-01-01T00:00:00Z"


def ndjson(raw: bytes) -> list[dict[str, Any]]:
    assert raw.endswith(b"\n")
    return [orjson.loads(line) for line in raw.splitlines()]


def test_ollama_chat_streams_by_default() -> None:
    req = {"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi you"}],
           "options": {"num_predict": 2}}
    r = ollama_wire.ChatReply(req, Knobs(tokens=5), "llama3.1:8b", fixed_clock)
    assert r.stream and r.content_type == ollama_wire.NDJSON
    lines = ndjson(stream_all(r))
    assert lines[0] == {"model": "llama3.1:8b", "created_at": "2024-01-01T00:00:00Z",
                        "message": {"role": "assistant", "content": "tok0 "}, "done": False}
    last = lines[-1]
    assert len(lines) == 3 and last["done"] is True and last["done_reason"] == "length"
    assert last["message"] == {"role": "assistant", "content": ""}
    assert (last["eval_count"], last["prompt_eval_count"], last["total_duration"]) == (2, 2, 1000)
    assert last["eval_duration"] > 0 and "load_duration" in last and "prompt_eval_duration" in last


def test_ollama_chat_non_stream_and_load() -> None:
    req = {"messages": [{"role": "user", "content": "hi"}], "stream": False}
    body = orjson.loads(ollama_wire.ChatReply(req, Knobs(tokens=2), "m", fixed_clock).full(5))
    assert body["message"]["content"] == "tok0 tok1 " and body["done_reason"] == "stop"
    assert body["done"] is True and body["eval_count"] == 2
    load = ollama_wire.ChatReply({"model": "m"}, Knobs(), "m", fixed_clock)
    assert not load.stream and load.n == 0
    assert orjson.loads(load.full(0))["done_reason"] == "load"


def test_ollama_think_reasons_first_in_thinking() -> None:
    req = {"messages": [{"role": "user", "content": "hi"}], "think": True}
    lines = ndjson(stream_all(ollama_wire.ChatReply(req, Knobs(tokens=2), "m", fixed_clock)))
    assert [line["message"].get("thinking") for line in lines[:3]] == list(ollama_wire.THOUGHT)
    assert [line["message"]["content"] for line in lines[:3]] == ["", "", ""]
    assert lines[3]["message"] == {"role": "assistant", "content": "tok0 "} and lines[-1]["eval_count"] == 2
    whole = orjson.loads(ollama_wire.ChatReply({**req, "stream": False}, Knobs(tokens=2), "m", fixed_clock).full(5))
    assert whole["message"] == {"role": "assistant", "content": "tok0 tok1 ", "thinking": "think0 think1 think2 "}
    generated = orjson.loads(ollama_wire.GenerateReply({"prompt": "x", "stream": False, "think": "high"},
                                                       Knobs(tokens=1), "m", fixed_clock).full(5))
    assert (generated["response"], generated["thinking"]) == ("tok0 ", "think0 think1 think2 ")
    plain = orjson.loads(ollama_wire.ChatReply({**req, "think": False, "stream": False}, Knobs(tokens=1), "m",
                                               fixed_clock).full(5))
    assert "thinking" not in plain["message"]


def test_ollama_generate_response_field() -> None:
    r = ollama_wire.GenerateReply({"prompt": "x y", "stream": False}, Knobs(echo=True), "m",
                                  fixed_clock)
    body = orjson.loads(r.full(1))
    assert body["response"] == "x y" and "message" not in body and body["prompt_eval_count"] == 2
    s = ollama_wire.GenerateReply({"prompt": "q"}, Knobs(tokens=1), "m", fixed_clock)
    assert [line["response"] for line in ndjson(stream_all(s))] == ["tok0 ", ""]


def test_ollama_num_predict_non_positive_means_no_cap() -> None:
    r = ollama_wire.ChatReply({"messages": [{"role": "user", "content": "x"}],
                               "options": {"num_predict": -1}}, Knobs(tokens=3), "m")
    assert r.n == 3


def test_ollama_bad_requests() -> None:
    with pytest.raises(WireError):
        ollama_wire.ChatReply({"messages": "hi"}, Knobs(), "m")
    with pytest.raises(WireError):
        ollama_wire.ChatReply({"messages": [], "options": {"num_predict": "3"}}, Knobs(), "m")
    with pytest.raises(WireError):
        ollama_wire.EmbedReply({"input": 3}, Knobs(), "m")


def test_ollama_embed_and_legacy_embeddings() -> None:
    body = orjson.loads(ollama_wire.EmbedReply({"input": ["a", "b"]}, Knobs(), "m").full(9))
    assert body["model"] == "m" and body["total_duration"] == 9 and body["prompt_eval_count"] == 2
    assert body["embeddings"] == [openai_wire.embed_vector("a"), openai_wire.embed_vector("b")]
    legacy = orjson.loads(ollama_wire.EmbedReply({"prompt": "a"}, Knobs(), "m", legacy=True).full(0))
    assert legacy == {"embedding": openai_wire.embed_vector("a")}


def test_ollama_names_tags_and_errors() -> None:
    assert ollama_wire.accepted_names(("llama3", "qwen:7b")) == {"llama3", "llama3:latest",
                                                                  "qwen:7b"}
    tags = orjson.loads(ollama_wire.tags_body(("llama3.1:8b", "phi3"), "2024-01-01T00:00:00Z"))
    first, second = tags["models"]
    assert first["name"] == first["model"] == "llama3.1:8b" and len(first["digest"]) == 64
    assert first["details"]["family"] == "llama" and first["details"]["parameter_size"] == "8B"
    assert second["name"] == "phi3:latest"
    err = ollama_wire.model_not_found("x")
    assert err.status == 404
    assert orjson.loads(ollama_wire.error_body(err.message)) == {
        "error": 'model "x" not found, try pulling it first'}


# ----------------------------------------------------------------------------- CLI
def test_cli_arguments_and_bad_knob_exit_code(capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from services.simulator.main import add_arguments, main

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--flavor", "ollama", "--port", "0", "--ttft-ms", "5"])
    assert (args.host, args.tokens, args.ttft_ms, args.error_status) == ("127.0.0.1", 16, 5.0, 500)
    bad = parser.parse_args(["--flavor", "openai", "--port", "0", "--error-rate", "2"])
    assert main(bad) == 2  # refused before any socket is opened
    assert "'error_rate' must be in" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        parser.parse_args(["--port", "1"])  # --flavor is required
