#!/usr/bin/env bash
# The faster peers of issue 18, installed from their registries at pinned versions, and one
# compare run with every gateway (direct, LiteLLM, Portkey, aiub, vllm-router), interleaved.
#
#   bench/peers.sh install              vllm-router into $VLLM_ROUTER_VENV, Portkey into $PORTKEY_DIR
#   bench/peers.sh vllm-router PORT     exec it against $STUB_BASE (what compare.sh --gateway-start runs)
#   bench/peers.sh portkey PORT         exec Portkey's gateway (routed per request by headers)
#   bench/peers.sh compare [ARGS...]    compare.sh with all four peers and aiub's floor (bench/floor.py:
#                                       its shape, three Python processes on NATS, doing nothing
#                                       else); ARGS go to compare.sh (e.g. --reps 2 --duration 8 --conc "1 64")
#
# Ports: aiub 4100, vllm-router 8090, Portkey 8787, floor 4300, LiteLLM 4000, stub 8001.
# Portkey 1.15.2 answers every streaming request with a 500 on Node 20 (`TypeError: immutable`
# in its log): the harness records the failures; nothing here works around it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
VLLM_ROUTER_VERSION=0.1.17
PORTKEY_VERSION=1.15.2
VLLM_ROUTER_VENV=${VLLM_ROUTER_VENV:-/tmp/vllm-router-venv}
PORTKEY_DIR=${PORTKEY_DIR:-/tmp/portkey-gw}

install() {
  if ! "$VLLM_ROUTER_VENV/bin/pip" show vllm-router 2>/dev/null | grep -qx "Version: $VLLM_ROUTER_VERSION"; then
    python3 -m venv "$VLLM_ROUTER_VENV"
    "$VLLM_ROUTER_VENV/bin/pip" install -q "vllm-router==$VLLM_ROUTER_VERSION"
  fi
  if ! command -v node >/dev/null; then
    [[ $(id -u) == 0 ]] || { echo "node is missing: apt-get install -y nodejs npm" >&2; exit 1; }
    apt-get install -y -qq nodejs npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null; }
  fi
  local have
  have=$(sed -n 's/^ *"version": "\(.*\)",/\1/p' "$PORTKEY_DIR/node_modules/@portkey-ai/gateway/package.json" 2>/dev/null || true)
  if [[ $have != "$PORTKEY_VERSION" ]]; then
    mkdir -p "$PORTKEY_DIR"
    (cd "$PORTKEY_DIR" && { [[ -f package.json ]] || npm init -y >/dev/null; } &&
      npm install -q --no-audit --no-fund "@portkey-ai/gateway@$PORTKEY_VERSION" >/dev/null)
  fi
  echo "vllm-router $VLLM_ROUTER_VERSION ($VLLM_ROUTER_VENV), @portkey-ai/gateway $PORTKEY_VERSION ($PORTKEY_DIR), node $(node --version)"
}

case "${1:-}" in
  install) install;;
  vllm-router)
    exec "$VLLM_ROUTER_VENV/bin/vllm-router" --host 127.0.0.1 --port "${2:?PORT}" \
      --worker-urls "${STUB_BASE:?STUB_BASE must be set (compare.sh exports it)}" --policy round_robin;;
  portkey)
    cd "$PORTKEY_DIR" && exec node node_modules/@portkey-ai/gateway/build/start-server.js --port "${2:?PORT}";;
  compare)
    shift
    install
    stub=http://127.0.0.1:8001
    exec "$HERE/compare/compare.sh" \
      --gateway portkey=http://127.0.0.1:8787 --gateway-key portkey=x \
      --gateway-start "portkey=$HERE/peers.sh portkey 8787" \
      --gateway-header 'portkey=x-portkey-provider: openai' \
      --gateway-header "portkey=x-portkey-custom-host: $stub/v1" \
      --gateway aiub=http://127.0.0.1:4100 --gateway-start "aiub=$HERE/start_stack.sh 4100" \
      --gateway vllm-router=http://127.0.0.1:8090 --gateway-start "vllm-router=$HERE/peers.sh vllm-router 8090" \
      --gateway floor=http://127.0.0.1:4300 --gateway-start "floor=$HERE/../.venv/bin/python $HERE/floor.py --port 4300" \
      "$@";;
  *) sed -n 2,13p "$0"; exit 2;;
esac
