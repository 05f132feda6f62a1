"""Command line for the simulator: ``python -m services.simulator`` and ``aiub simulator``."""

from __future__ import annotations

import argparse
import sys

from services.simulator.engine import EngineSettings
from services.simulator.knobs import Knobs, merge
from services.simulator.server import DEFAULT_MODELS, SimulatorSettings, run
from shared import arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--flavor", choices=("ollama", "openai", "anthropic"), required=True,
                        help="wire format to speak: Ollama native (+ /v1), OpenAI/vLLM, or Anthropic Messages")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=arguments.port_or_zero, required=True, help="0 picks a free port")
    parser.add_argument("--models", default=None,
                        help="comma-separated model names (default: "
                             + "; ".join(f"{k}: {','.join(v)}" for k, v in DEFAULT_MODELS.items())
                             + ")")
    defaults = Knobs()
    parser.add_argument("--tokens", type=int, default=defaults.tokens,
                        help="tokens per reply; max_tokens / num_predict caps it")
    parser.add_argument("--ttft-ms", type=float, default=defaults.ttft_ms,
                        help="delay before the first token")
    parser.add_argument("--itl-ms", type=float, default=defaults.itl_ms,
                        help="delay between tokens")
    parser.add_argument("--error-rate", type=float, default=defaults.error_rate,
                        help="fraction of model requests answered with --error-status")
    parser.add_argument("--error-status", type=int, default=defaults.error_status)
    parser.add_argument("--retry-after", type=float, default=None,
                        help="Retry-After seconds sent with injected 429 and 503")
    parser.add_argument("--seed", type=int, default=None, help="seed for error injection")
    engine = EngineSettings()
    parser.add_argument("--engine", choices=("vllm", "llamacpp", "ollama"), default=None,
                        help="behave like an inference engine (prefix cache, sequence cap, waiting queue) and "
                             "serve its load endpoints: vLLM /metrics, llama.cpp /metrics and /slots, Ollama /api/ps")
    parser.add_argument("--max-seqs", type=int, default=engine.max_seqs, help="engine: sequences run at once")
    parser.add_argument("--base-ttft-ms", type=float, default=engine.base_ttft_ms,
                        help="engine: time to first token with the whole prompt cached")
    parser.add_argument("--prefill-ms-per-token", type=float, default=engine.prefill_ms_per_token,
                        help="engine: added to the time to first token per prompt token not in the prefix cache")
    parser.add_argument("--kv-tokens", type=int, default=engine.cache_tokens,
                        help="engine: KV cache capacity in tokens (the prefix cache's bound)")
    parser.add_argument("--stall-rate", type=float, default=engine.stall_rate,
                        help="engine: fraction of requests that stall --stall-ms before their first token")
    parser.add_argument("--stall-ms", type=float, default=engine.stall_ms)
    parser.add_argument("--api-key", default=None,
                        help="require this key (Bearer, or x-api-key for anthropic) on model requests")


def main(args: argparse.Namespace) -> int:
    try:
        knobs = merge(Knobs(), {
            "tokens": args.tokens, "ttft_ms": args.ttft_ms, "itl_ms": args.itl_ms,
            "error_rate": args.error_rate, "error_status": args.error_status,
            "retry_after": getattr(args, "retry_after", None)})
    except ValueError as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    models = tuple(m.strip() for m in (args.models or "").split(",") if m.strip())
    engine = None
    if getattr(args, "engine", None):
        try:
            engine = EngineSettings(max_seqs=args.max_seqs, base_ttft_ms=args.base_ttft_ms,
                                    prefill_ms_per_token=args.prefill_ms_per_token, cache_tokens=args.kv_tokens,
                                    stall_rate=args.stall_rate, stall_ms=args.stall_ms, load_format=args.engine)
        except ValueError as exc:
            print(f"simulator: {exc}", file=sys.stderr)
            return 2
    try:
        run(SimulatorSettings(args.flavor, models, knobs, args.seed, getattr(args, "api_key", None), engine),
            args.host, args.port)
    except OSError as exc:  # the port is taken, or the address is not this host's
        print(f"simulator: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    return 0
