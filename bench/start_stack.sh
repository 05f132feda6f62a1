#!/usr/bin/env bash
# Start aiub in front of $STUB_URL (exported by bench/compare/compare.sh) on port ${1:-4000}.
# Runs in the foreground until SIGTERM; compare.sh kills its process group at the end. Config,
# state and every service's log stay in $AIUB_BENCH_WORKDIR (default /tmp/aiub-bench/stack-<time>).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${AIUB_PYTHON:-$ROOT/.venv/bin/python}
[[ -x $PY ]] || PY=python3
cd "$ROOT"
exec "$PY" bench/stack.py --backend "${STUB_URL:?STUB_URL must be set, e.g. http://127.0.0.1:8001/v1}" \
  --port "${1:-4000}" --workdir "${AIUB_BENCH_WORKDIR:-/tmp/aiub-bench/stack-$(date +%Y%m%d-%H%M%S)}" "${@:2}"
