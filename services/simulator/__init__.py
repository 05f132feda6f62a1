"""Fake LLM backends that speak the real Ollama and OpenAI (vLLM) wire formats.

Used by integration tests, the ``--demo`` mode and benchmarks; see `server.start_simulator`.
"""
