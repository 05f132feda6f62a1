"""The OpenAI-compatible adapter (vLLM, llama.cpp server, OpenAI): passthrough and its repairs."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.workers import failures
from services.workers.adapters import adapter_for
from services.workers.adapters.anthropic import AnthropicAdapter
from services.workers.adapters.base import StreamBroken
from services.workers.adapters.ollama import OllamaAdapter
from services.workers.adapters.openai_compatible import OpenAICompatibleAdapter
from shared.config import ProviderSpec
from shared.messages import InferenceRequest, RequestKind, WorkOrder

VLLM = ProviderSpec(type="vllm", base_url="http://127.0.0.1:8001")


def order(body: dict[str, Any], kind: RequestKind = "chat", stream: bool = True, model: str = "qwen-coder",
          backend: str = "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ") -> WorkOrder:
    return WorkOrder(request=InferenceRequest(id="r", attempt="a", kind=kind, model=model, body=body, stream=stream),
                     reply_inbox="_INBOX.x.a", provider="vllm", backend_model=backend)


def sse(*objs: dict[str, Any]) -> bytes:
    return b"".join(b"data: " + json.dumps(o).encode() + b"\n\n" for o in objs) + b"data: [DONE]\n\n"


def chunk(delta: dict[str, Any], finish: str | None = None, model: str = "llama-3.1-8b.gguf") -> dict[str, Any]:
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def test_body_passes_through_with_backend_model_name_and_extra_fields() -> None:
    body = {"model": "qwen-coder", "messages": [{"role": "user", "content": "x"}], "guided_json": {"type": "object"},
            "repeat_penalty": 1.1, "mirostat": 2}
    request = OpenAICompatibleAdapter().build(order(body), VLLM, None)
    assert request.url == "http://127.0.0.1:8001/v1/chat/completions" and request.headers == {}
    assert request.json == {**body, "model": "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"}
    cloud = ProviderSpec(type="openai", base_url="https://api.openai.com/v1", env_var="OPENAI_API_KEY")
    keyed = OpenAICompatibleAdapter().build(order(body, kind="embedding"), cloud, "sk-test")
    assert keyed.url == "https://api.openai.com/v1/embeddings" and keyed.headers == {"authorization": "Bearer sk-test"}


def test_stream_renames_model_and_adds_a_missing_role() -> None:
    stream = OpenAICompatibleAdapter().stream(order({}))
    out = [json.loads(c) for c in stream.feed(sse(chunk({"content": "Hi"}), chunk({}, "stop")))]
    assert stream.finished
    assert out[0]["choices"][0]["delta"] == {"content": "Hi", "role": "assistant"}
    assert {c["model"] for c in out} == {"qwen-coder"}


def test_stream_with_same_name_and_a_role_is_forwarded_byte_for_byte() -> None:
    raw = sse(chunk({"role": "assistant", "content": ""}, model="m"), chunk({"content": "Hi"}, model="m"))
    out = OpenAICompatibleAdapter().stream(order({}, model="m", backend="m")).feed(raw)
    assert out == [json.dumps(chunk({"role": "assistant", "content": ""}, model="m")).encode(),
                   json.dumps(chunk({"content": "Hi"}, model="m")).encode()]


def test_llama_cpp_usage_is_counted_when_the_server_sends_none() -> None:
    adapter = adapter_for(ProviderSpec(type="llama_cpp", base_url="http://127.0.0.1:8000"))
    stream = adapter.stream(order({"stream_options": {"include_usage": True}}))
    out = [json.loads(c) for c in stream.feed(sse(chunk({"role": "assistant", "content": ""}), chunk({"content": "a"}),
                                                  chunk({"content": ""}), chunk({"content": "b"}), chunk({}, "stop")))]
    assert out[-1]["choices"] == [] and out[-1]["usage"]["completion_tokens"] == 2
    assert out[-1]["model"] == "qwen-coder" and out[-1]["id"] == "chatcmpl-1"
    assert stream.usage.completion_tokens == 2
    # A server that does send usage is believed, and nothing is made up.
    honest = adapter.stream(order({"stream_options": {"include_usage": True}}))
    sent = honest.feed(sse(chunk({"content": "a"}), {"id": "x", "choices": [], "usage": {
        "prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5}}))
    assert len(sent) == 2 and honest.usage.prompt_tokens == 4


def test_mid_stream_error_and_garbage_break_the_stream() -> None:
    with pytest.raises(StreamBroken, match="out of memory"):
        OpenAICompatibleAdapter().stream(order({})).feed(b'data: {"error": {"message": "out of memory"}}\n\n')
    with pytest.raises(StreamBroken):
        OpenAICompatibleAdapter().stream(order({})).feed(b"data: {nope\n\n")


def test_result_renames_and_reports_usage() -> None:
    body = json.dumps({"id": "x", "object": "chat.completion", "model": "Qwen/Qwen2.5-Coder-7B-Instruct-AWQ",
                       "choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7}})
    data, usage = OpenAICompatibleAdapter().result(order({}, stream=False), body.encode())
    assert json.loads(data)["model"] == "qwen-coder" and (usage.prompt_tokens, usage.completion_tokens) == (3, 4)


def test_models_listing() -> None:
    adapter = OpenAICompatibleAdapter()
    assert adapter.models_request(VLLM, None).url == "http://127.0.0.1:8001/v1/models"
    assert adapter.parse_models(b'{"object": "list", "data": [{"id": "a", "object": "model"}, {"id": "b"}]}') == [
        "a", "b"]
    with pytest.raises(StreamBroken):
        adapter.parse_models(b'{"models": []}')


def test_adapter_per_provider_type() -> None:
    kinds = {t: type(adapter_for(ProviderSpec(type=t, base_url="http://h"))) for t in (  # type: ignore[arg-type]
        "ollama", "ollama_cloud", "openai_compatible", "vllm", "llama_cpp", "openai", "anthropic")}
    assert kinds["ollama"] is kinds["ollama_cloud"] is OllamaAdapter
    assert kinds["anthropic"] is AnthropicAdapter
    assert {kinds[t] for t in ("openai_compatible", "vllm", "llama_cpp", "openai")} == {OpenAICompatibleAdapter}


def test_translation_failures_map_to_client_errors() -> None:
    invalid = failures.invalid_request("'n' must be 1", "n")
    assert (invalid.status, invalid.retryable, invalid.error.param, invalid.outcome) == (400, False, "n",
                                                                                         "client_error")
    missing = failures.missing_api_key("anthropic", "ANTHROPIC_API_KEY")
    assert (missing.status, missing.retryable, missing.outcome) == (502, True, "client_error")
    assert "ANTHROPIC_API_KEY" in missing.error.message
    unsupported = failures.unsupported("anthropic", "embedding")
    assert (unsupported.status, unsupported.retryable) == (400, False)
