#!/usr/bin/env bash
# Installs the real llama.cpp backend the contract suite can run against: llama-cpp-python's
# OpenAI server (the spec's llama.cpp "Python" server) and `gguf`, which the test uses to write
# its own tiny model. llama-cpp-python compiles llama.cpp from source (about 4 minutes on two
# cores), so the wheel is built once into a cache outside the repository and reused by every
# later run on the same machine. Optional: without it that one test skips and says why.
#   scripts/build-llama-cpp.sh            build (if not cached) and install into .venv
#   AIUB_WHEEL_CACHE=DIR                  where wheels are kept (default ~/.cache/aiub/wheels)
set -euo pipefail
cd "$(dirname "$0")/.."
LLAMA_CPP_PYTHON=0.3.36
GGUF=0.19.0
CACHE=${AIUB_WHEEL_CACHE:-$HOME/.cache/aiub/wheels}
PYTHON=${PYTHON:-.venv/bin/python}
mkdir -p "$CACHE"

if ! compgen -G "$CACHE/llama_cpp_python-$LLAMA_CPP_PYTHON-*.whl" > /dev/null; then
  echo "building llama-cpp-python $LLAMA_CPP_PYTHON (compiles llama.cpp; a few minutes, once)" >&2
  CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc)} \
  CMAKE_ARGS="${CMAKE_ARGS:--DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF}" \
    "$PYTHON" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$CACHE" \
    "llama-cpp-python==$LLAMA_CPP_PYTHON"
fi
# Everything already installed stays at its pinned version: the server's extras only add.
constraints=$(mktemp)
trap 'rm -f "$constraints"' EXIT
"$PYTHON" -m pip freeze --exclude-editable --disable-pip-version-check > "$constraints"
"$PYTHON" -m pip install --quiet --disable-pip-version-check --find-links "$CACHE" -c "$constraints" \
  "llama-cpp-python[server]==$LLAMA_CPP_PYTHON" "gguf==$GGUF"
"$PYTHON" -c "import llama_cpp, gguf; print('llama-cpp-python', llama_cpp.__version__, 'ready')"
