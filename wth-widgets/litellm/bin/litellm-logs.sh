#!/usr/bin/env bash
# Recent log lines of every service, merged by time (`aiub logs`).
#   litellm-logs.sh                 the last 20 lines (AIUB_LOG_LINES)
#   litellm-logs.sh --errors        warnings and errors only
#   litellm-logs.sh --request ID    one request's story; any other `aiub logs` option passes through
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

args=(logs --state-dir "$AIUB_STATE_DIR" -n "${AIUB_LOG_LINES:-20}")  # the logs outlive the stack
if [[ ${1:-} == --errors ]]; then
  shift
  args+=(--level warning)
fi
header "aiub logs"
[[ -n $AIUB_STATE_DIR ]] || no_stack
aiub "${args[@]}" "$@"
