#!/usr/bin/env bash
# Every widget in one tmux session, each pane refreshed by `watch`:
#   wth-widgets/litellm/tmux-dashboard.sh [SECONDS]      (default every 5 s; detach with C-b d)
# The widgets read the same environment as when run alone (AIUB_STATE_DIR, AIUB_METRICS, ...).
set -euo pipefail
bin=$(cd "$(dirname "${BASH_SOURCE[0]}")/bin" && pwd)
every=${1:-5}
session=${AIUB_TMUX_SESSION:-aiub}
command -v tmux >/dev/null || { echo "tmux is not installed" >&2; exit 2; }
pane() { echo "FORCE_COLOR=1 watch -c -t -n $every $bin/$1"; }

tmux new-session -d -s "$session" -n aiub "$(pane health-status.sh)"
tmux split-window -t "$session" -h "$(pane providers-overview.sh)"
tmux split-window -t "$session" -v "$(pane provider-score.sh)"
tmux select-pane -t "$session:0.0"
tmux split-window -t "$session" -v "$(pane litellm-metrics.sh)"
tmux split-window -t "$session" -v "$(pane cache-performance.sh)"
tmux new-window -t "$session" -n logs "AIUB_LOG_LINES=40 $bin/litellm-logs.sh --follow"
tmux select-window -t "$session:0"
exec tmux attach -t "$session"
