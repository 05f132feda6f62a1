#!/usr/bin/env bash
# Routing smoke test (the spec's test_kimi_routing.sh) against a running aiub stack.
#
#   scripts/test-routing.sh                 # against `aiub up --demo` on http://localhost:4000
#   AIUB_URL=http://gpu-box:4000 AIUB_API_KEY=sk-... \
#   AIUB_DIRECT_MODEL=kimi-k2:1t-cloud AIUB_DIRECT_PROVIDER=ollama_cloud scripts/test-routing.sh
#
# 1. direct: a model name routed by exact match must be answered by its provider;
# 2. capability: `capability:<name>` and the `capability` body field must be answered from the pool;
# 3. fallback: with the chain's primary failing, the next provider in the chain must answer.
#    The primary is broken through the simulator's knob API, so this step needs a simulated
#    primary: found in $AIUB_STATE_DIR/demo-config (what `aiub up --demo` writes) or given as
#    AIUB_FALLBACK_BREAK_URL. Without one it is skipped, and says so.
# Which provider answered comes from the gateway's `x-aiub-provider` response header.
# Exits 1 on any wrong route or failed request.
set -euo pipefail

URL="${AIUB_URL:-http://localhost:4000}"
KEY="${AIUB_API_KEY:-}"
STATE_DIR="${AIUB_STATE_DIR:-.aiub}"
DIRECT_MODEL="${AIUB_DIRECT_MODEL:-qwen-coder}"
DIRECT_PROVIDER="${AIUB_DIRECT_PROVIDER:-vllm}"
CAPABILITY="${AIUB_CAPABILITY:-reasoning}"
POOL="${AIUB_CAPABILITY_POOL:-ollama llama_cpp_python llama_cpp_native}"
FALLBACK_MODEL="${AIUB_FALLBACK_MODEL:-llama3.1:8b}"
FALLBACK_PRIMARY="${AIUB_FALLBACK_PRIMARY:-ollama}"
FALLBACK_EXPECT="${AIUB_FALLBACK_EXPECT:-llama_cpp_python}"
BREAK_URL="${AIUB_FALLBACK_BREAK_URL:-}"

failures=0
work=$(mktemp -d)
restore_knobs=""
cleanup() {
  if [[ -n "$restore_knobs" ]]; then
    curl -sS -o /dev/null -X POST -H 'content-type: application/json' -d "$restore_knobs" "$BREAK_URL/_sim/knobs" || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

# ask MODEL [EXTRA_JSON_FIELDS] -> sets STATUS, PROVIDER, ANSWER
ask() {
  local model=$1 extra=${2:-}
  local prompt="routing smoke test $(date +%s%N)-$RANDOM"  # unique: the response cache must not answer
  local body="{\"model\": \"$model\", \"max_tokens\": 8, \"messages\": [{\"role\": \"user\", \"content\": \"$prompt\"}]${extra:+, $extra}}"
  local auth=()
  [[ -n "$KEY" ]] && auth=(-H "authorization: Bearer $KEY")
  STATUS=$(curl -sS --max-time 60 -o "$work/body" -D "$work/headers" -w '%{http_code}' "${auth[@]}" \
    -H 'content-type: application/json' -d "$body" "$URL/v1/chat/completions" || true)
  STATUS=${STATUS:-000}
  PROVIDER=$(grep -i '^x-aiub-provider:' "$work/headers" 2>/dev/null | tail -1 | cut -d: -f2- | tr -d ' \r' || true)
  ANSWER=$(head -c 160 "$work/body" 2>/dev/null | tr '\n' ' ' || true)
}

# verdict NAME EXPECTED... : the last request must be a 200 answered by one of EXPECTED
verdict() {
  local name=$1
  shift
  local expected
  for expected in "$@"; do
    if [[ "$STATUS" == "200" && "$PROVIDER" == "$expected" ]]; then
      echo "  ok    $name -> $PROVIDER"
      return
    fi
  done
  echo "  FAIL  $name -> HTTP $STATUS, provider '${PROVIDER:-<no x-aiub-provider header>}', expected: $*"
  echo "        $ANSWER"
  failures=$((failures + 1))
}

echo "aiub routing smoke test against $URL"

echo "Test 1: direct request to $DIRECT_MODEL"
ask "$DIRECT_MODEL"
# shellcheck disable=SC2086
verdict "$DIRECT_MODEL" "$DIRECT_PROVIDER"

echo "Test 2: $CAPABILITY capability request (pool: $POOL)"
for _ in 1 2 3; do
  ask "capability:$CAPABILITY"
  # shellcheck disable=SC2086
  verdict "model capability:$CAPABILITY" $POOL
done
ask "auto" "\"capability\": \"$CAPABILITY\""
# shellcheck disable=SC2086
verdict "capability field \"$CAPABILITY\"" $POOL

echo "Test 3: fallback for $FALLBACK_MODEL when $FALLBACK_PRIMARY fails"
if [[ -z "$BREAK_URL" && -f "$STATE_DIR/demo-config/providers.yaml" ]]; then
  # The demo points each provider at its simulator: `  <key>:` ... `    base_url: http://...`
  BREAK_URL=$(awk -v key="  $FALLBACK_PRIMARY:" '
    $0 == key { inside = 1; next }
    inside && /^  [^ ]/ { exit }
    inside && $1 == "base_url:" { print $2; exit }' "$STATE_DIR/demo-config/providers.yaml")
fi
if [[ -z "$BREAK_URL" ]] || ! curl -sf -o "$work/knobs" --max-time 5 "$BREAK_URL/_sim/knobs"; then
  echo "  skip  no simulated $FALLBACK_PRIMARY to break (run against \`aiub up --demo\` or set AIUB_FALLBACK_BREAK_URL)"
else
  restore_knobs=$(grep -o '"error_rate":[^,}]*,"error_status":[^,}]*' "$work/knobs" | sed 's/^/{/; s/$/}/')
  curl -sS -o /dev/null -X POST -H 'content-type: application/json' \
    -d '{"error_rate": 1.0, "error_status": 503}' "$BREAK_URL/_sim/knobs"
  ask "$FALLBACK_MODEL"
  verdict "$FALLBACK_MODEL with $FALLBACK_PRIMARY failing" "$FALLBACK_EXPECT"
fi

if [[ $failures -gt 0 ]]; then
  echo "FAILED: $failures wrong route(s)"
  exit 1
fi
echo "all routes as expected"
