"""What a front door adds per request over the chat path, in CPU microseconds, in this process.

The doors are pure translations (services/gateway/dialects/); everything else a request does
(auth, limits, the bus, the backend) is the chat path's and the same for every door. So this
replays only the translations, beside what the chat path itself does at the same three places:

- request: the door's `parse` (and, for Responses, the door made for the request) and the
  gateway's `validation.check` of the translation, against `validation.parse` of the same
  conversation sent as an OpenAI chat request;
- answer: the door's `result` of a 64-token chat.completion, against nothing (the chat path
  sends the backend's bytes as they are);
- stream: a 64-token stream as vLLM sends it (a role chunk, 64 content chunks, a finish chunk, a
  usage chunk; one chunk per frame, the worst case: frames usually carry several), through the
  door's translator (`stream`, `chunks` per frame, `end`), against the chat path's SSE framing
  (`event` per chunk, `[DONE]`).

The request is an agent's small turn: a system prompt, a user message of ~300 characters and one
tool. Figures are the median of 5 runs of `-n` rounds each.

    python bench/front_door_bench.py            # 2 000 rounds
    python bench/front_door_bench.py -n 10000
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec

from services.gateway import validation
from services.gateway.dialects import Dialect, Translated
from services.gateway.dialects.anthropic import MESSAGES
from services.gateway.dialects.ollama import OllamaDialect
from services.gateway.dialects.responses import ResponsesDoor
from shared.config import Config, ModelMappingsFile, ProviderSpec, RuntimeFile
from shared.sse import DONE_EVENT, event

MODEL = "qwen-coder"
TOKENS = 64
SYSTEM = "You are a careful coding assistant. Answer briefly and show code when it helps."
USER = ("Here is a function that parses a date string and sometimes fails on inputs with a timezone "
        "offset. Explain why it fails and suggest the smallest change that makes it handle offsets "
        "like +02:00 and Z, keeping the signature the same.")
PARAMETERS = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
_encode = msgspec.json.encode


def config() -> Config:
    return Config(directory=Path("."), providers={"vllm": ProviderSpec.model_validate(
        {"type": "vllm", "base_url": "http://127.0.0.1:8000", "models": [MODEL]})},
        mappings=ModelMappingsFile.model_validate({"exact_matches": {MODEL: {"provider": "vllm"}}}),
        runtime=RuntimeFile())


def bodies() -> dict[str, bytes]:
    """One conversation, as each API's client sends it."""
    return {
        "chat": _encode({"model": MODEL, "max_tokens": 512, "messages": [
            {"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
            "tools": [{"type": "function", "function": {"name": "read_file", "parameters": PARAMETERS}}]}),
        "anthropic": _encode({"model": MODEL, "max_tokens": 512, "system": SYSTEM,
                              "messages": [{"role": "user", "content": USER}],
                              "tools": [{"name": "read_file", "input_schema": PARAMETERS}]}),
        "responses": _encode({"model": MODEL, "max_output_tokens": 512, "instructions": SYSTEM, "input": USER,
                              "tools": [{"type": "function", "name": "read_file", "parameters": PARAMETERS}]}),
        "ollama": _encode({"model": MODEL, "stream": False, "options": {"num_predict": 512}, "messages": [
            {"role": "system", "content": SYSTEM}, {"role": "user", "content": USER}],
            "tools": [{"type": "function", "function": {"name": "read_file", "parameters": PARAMETERS}}]}),
    }


def completion() -> bytes:
    return _encode({"id": "chatcmpl-bench", "object": "chat.completion", "created": 1, "model": MODEL, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "".join(f"tok{i} " for i in range(TOKENS))},
         "finish_reason": "stop"}], "usage": {"prompt_tokens": 90, "completion_tokens": TOKENS,
                                              "total_tokens": 90 + TOKENS}})


def stream_chunks() -> list[bytes]:
    def chunk(delta: dict[str, Any], finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
        choices = [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]
        return _encode({"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1, "model": MODEL,
                        "choices": choices, **({"usage": usage} if usage else {})})

    return [chunk({"role": "assistant", "content": ""}), *(chunk({"content": f"tok{i} "}) for i in range(TOKENS)),
            chunk({}, "stop"), chunk({}, usage={"prompt_tokens": 90, "completion_tokens": TOKENS,
                                                "total_tokens": 90 + TOKENS})]


def cpu_us(fn: Callable[[], object], rounds: int) -> float:
    for _ in range(min(500, rounds)):
        fn()
    runs = []
    for _ in range(5):
        started = time.process_time()
        for _ in range(rounds):
            fn()
        runs.append((time.process_time() - started) / rounds * 1e6)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("-n", "--rounds", type=int, default=2000)
    rounds = parser.parse_args(argv).rounds
    cfg = config()
    settings = cfg.runtime.gateway
    raw = bodies()
    answer = completion()
    chunks = stream_chunks()
    doors: dict[str, Callable[[], Dialect]] = {
        "anthropic": lambda: MESSAGES,
        "responses": lambda: ResponsesDoor(cfg, "resp_0123456789abcdef0123456789abcdef", 1_700_000_000),
        "ollama": (lambda door: lambda: door)(OllamaDialect("chat", cfg)),
    }

    def chat_request() -> object:
        return validation.parse("chat", raw["chat"], settings)

    def chat_stream() -> object:
        return b"".join(event(c) for c in chunks) + DONE_EVENT

    chat = {"request": cpu_us(chat_request, rounds), "answer": 0.0, "stream": cpu_us(chat_stream, rounds)}

    print(f"{rounds} rounds; CPU µs per request (per chunk: the stream's extra over {len(chunks)} chunks); "
          f"target: <= 200 µs per request over the chat path")
    print(f"{'door':<10} {'request':>8} {'answer':>8} {'stream':>8} {'/chunk':>7} {'whole':>7} {'streamed':>9}")
    print(f"{'chat':<10} {chat['request']:8.1f} {chat['answer']:8.1f} {chat['stream']:8.1f}")
    for name, made in doors.items():
        body = raw[name]

        def request(made: Callable[[], Dialect] = made, body: bytes = body) -> object:
            translated = made().parse(body)
            return validation.check(translated.kind, translated.body, settings)

        door = made()
        translated = door.parse(body)

        def whole(door: Dialect = door, translated: Translated = translated) -> object:
            return door.result(translated, answer)

        def streamed(door: Dialect = door, translated: Translated = translated) -> object:
            translator = door.stream(translated)
            out = [translator.chunks([c]) for c in chunks]
            return b"".join(out) + translator.end(90, TOKENS)

        extra = {"request": cpu_us(request, rounds) - chat["request"], "answer": cpu_us(whole, rounds),
                 "stream": cpu_us(streamed, rounds) - chat["stream"]}
        print(f"{name:<10} {extra['request']:+8.1f} {extra['answer']:+8.1f} {extra['stream']:+8.1f} "
              f"{extra['stream'] / len(chunks):+7.2f} {extra['request'] + extra['answer']:+7.1f} "
              f"{extra['request'] + extra['stream']:+9.1f}")
    print("request, answer, stream: the door's extra over the chat path's own work at that step (chat row);")
    print("whole = request + answer (a non-streaming request), streamed = request + stream (64 tokens)")


if __name__ == "__main__":
    main()
