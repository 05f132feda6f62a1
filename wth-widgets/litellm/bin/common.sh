#!/usr/bin/env bash
# Shared helpers for the aiub shell widgets. Each widget sources this file, prints one small
# screenful and exits, so it can run under `watch -n 5`, in a tmux pane, or as a WTH widget.
#
# Where the stack is (all optional; the defaults find the stack `aiub up` started, from anywhere):
#   AIUB            the aiub command (default: `aiub` on PATH, else the repo's .venv/bin/aiub)
#   AIUB_STATE_DIR  where `aiub up` keeps stack.json and the logs (default: ./.aiub when it holds a
#                   stack.json, else the dir `aiub up` recorded in ${XDG_STATE_HOME:-~/.local/state}/aiub/current)
#   AIUB_NATS       NATS URL for `aiub status` (default: what stack.json says)
#   AIUB_METRICS    space-separated /metrics URLs (default: every service in stack.json)
#   AIUB_GATEWAY    gateway base URL (default: stack.json's, else http://127.0.0.1:4000)
#   NO_COLOR        set (to anything) for plain output
# Needs bash, curl and jq.

set -uo pipefail

AIUB_WIDGETS_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
AIUB_REPO=$(cd "$AIUB_WIDGETS_DIR/../../.." && pwd)

# The rule of cli/stack_dir.py, which `aiub status` and `aiub dashboard` follow too (a test runs
# both): $AIUB_STATE_DIR as given; else ./.aiub when it holds a stack.json; else the dir named in
# the pointer file `aiub up` writes, when it holds a stack.json; else no stack is found.
locate_state_dir() {
  local pointer='' recorded=''
  if [[ -n ${AIUB_STATE_DIR:-} ]]; then echo "$AIUB_STATE_DIR"; return 0; fi
  if [[ -f .aiub/stack.json ]]; then echo "$PWD/.aiub"; return 0; fi
  if [[ -n ${XDG_STATE_HOME:-} ]]; then pointer=$XDG_STATE_HOME/aiub/current
  elif [[ -n ${HOME:-} ]]; then pointer=$HOME/.local/state/aiub/current; fi
  [[ -n $pointer && -f $pointer ]] && recorded=$(head -n 1 "$pointer")
  if [[ $recorded == /* && -f $recorded/stack.json ]]; then echo "$recorded"; return 0; fi
  return 1
}
AIUB_STATE_DIR=$(locate_state_dir) || AIUB_STATE_DIR=''
STACK_JSON=${AIUB_STATE_DIR:+$AIUB_STATE_DIR/stack.json}

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "aiub widget: '$tool' is required but not installed" >&2; exit 2; }
  done
}
need curl jq

if [[ -z ${NO_COLOR:-} && -t 1 || -n ${FORCE_COLOR:-} ]]; then
  C_RED=$'\e[31m' C_GREEN=$'\e[32m' C_YELLOW=$'\e[33m' C_CYAN=$'\e[36m' C_DIM=$'\e[2m' C_BOLD=$'\e[1m' C_OFF=$'\e[0m'
else
  C_RED='' C_GREEN='' C_YELLOW='' C_CYAN='' C_DIM='' C_BOLD='' C_OFF=''
fi

# With no stack.json found and nothing named by hand (AIUB_NATS, AIUB_METRICS, AIUB_GATEWAY), a
# widget says so in grey and stops: a default URL might be answered by something else, and
# "0/0 routable" in green would claim a healthy stack that is not there.
require_stack() {
  [[ -n $STACK_JSON && -f $STACK_JSON ]] && return 0
  [[ -n ${AIUB_NATS:-}${AIUB_METRICS:-}${AIUB_GATEWAY:-} ]] && return 0
  no_stack
}

no_stack() {
  local where=${AIUB_STATE_DIR:+ in $AIUB_STATE_DIR}
  echo "${C_DIM}⚪ no stack found${where}: start one with aiub up, or set AIUB_STATE_DIR${C_OFF}"
  exit 1
}

aiub() {
  if [[ -n ${AIUB:-} ]]; then
    # shellcheck disable=SC2086  # AIUB may be a command with arguments, e.g. "python -m cli"
    $AIUB "$@"
  elif type -P aiub >/dev/null 2>&1; then  # `command -v` would find this function
    command aiub "$@"
  else
    "$AIUB_REPO/.venv/bin/aiub" "$@"
  fi
}

stack_value() {  # a top-level string from stack.json, or nothing
  [[ -n $STACK_JSON && -f $STACK_JSON ]] && jq -r --arg k "$1" '.[$k] // empty | strings' "$STACK_JSON" 2>/dev/null
}

gateway_url() {
  local url=${AIUB_GATEWAY:-$(stack_value gateway)}
  url=${url:-http://127.0.0.1:4000}
  echo "${url%/}"
}

status_json() {  # `aiub status --json`: {"stale", "leader", "heartbeat_age_s", "providers": [...]}
  local args=(status --json)
  [[ -n $AIUB_STATE_DIR ]] && args+=(--state-dir "$AIUB_STATE_DIR")
  [[ -n ${AIUB_NATS:-} ]] && args+=(--nats "$AIUB_NATS")
  aiub "${args[@]}"
}

metrics_urls() {
  if [[ -n ${AIUB_METRICS:-} ]]; then
    tr ' ' '\n' <<<"$AIUB_METRICS" | grep -v '^$'
  elif [[ -n $STACK_JSON && -f $STACK_JSON ]]; then
    jq -r '(.metrics // {}) | .[] | strings' "$STACK_JSON"
  fi
}

scrape() {  # every endpoint's /metrics, concatenated; `# DOWN url` for one that did not answer
  local url
  while read -r url; do
    curl -fsS --max-time 2 "$url" 2>/dev/null || echo "# DOWN $url"
  done < <(metrics_urls)
}

# metric_sum NAME [label=value ...] < scrape: the sum of NAME's samples whose labels match
metric_sum() {
  local name=$1; shift
  awk -v name="$name" -v filters="$*" '
    BEGIN { n = split(filters, f, " ") }
    /^#/ || NF < 2 { next }
    {
      value = $NF; line = substr($0, 1, length($0) - length($NF) - 1)
      brace = index(line, "{"); metric = brace ? substr(line, 1, brace - 1) : line
      if (metric != name) next
      labels = brace ? "," substr(line, brace + 1) : ""
      for (i = 1; i <= n; i++) {
        eq = index(f[i], "="); key = substr(f[i], 1, eq - 1); want = substr(f[i], eq + 1)
        if (index(labels, "," key "=\"" want "\"") == 0) next
      }
      sum += value; found = 1
    }
    END { if (found) printf "%.10g\n", sum }'
}

# metric_by LABEL NAME [label=value ...] < scrape: "value sum" per value of LABEL, sorted
metric_by() {
  local label=$1 name=$2; shift 2
  awk -v label="$label" -v name="$name" -v filters="$*" '
    BEGIN { n = split(filters, f, " ") }
    /^#/ || NF < 2 { next }
    {
      value = $NF; line = substr($0, 1, length($0) - length($NF) - 1)
      brace = index(line, "{"); if (!brace) next
      if (substr(line, 1, brace - 1) != name) next
      labels = "," substr(line, brace + 1)
      for (i = 1; i <= n; i++) {
        eq = index(f[i], "="); key = substr(f[i], 1, eq - 1); want = substr(f[i], eq + 1)
        if (index(labels, "," key "=\"" want "\"") == 0) next
      }
      start = index(labels, "," label "=\""); if (!start) next
      rest = substr(labels, start + length(label) + 3); key = substr(rest, 1, index(rest, "\"") - 1)
      sums[key] += value
    }
    END { for (k in sums) printf "%s %.10g\n", k, sums[k] }' | sort
}

state_icon() {
  case $1 in
    active) echo "${C_GREEN}🟢${C_OFF}" ;;
    degraded) echo "${C_YELLOW}🟡${C_OFF}" ;;
    cooldown) echo "${C_CYAN}🔵${C_OFF}" ;;
    unavailable) echo "${C_RED}🔴${C_OFF}" ;;
    *) echo "⚪" ;;
  esac
}

header() {  # widget title with the time, so a stale pane is obvious
  printf '%s%s%s  %s%s%s\n' "$C_BOLD" "$1" "$C_OFF" "$C_DIM" "$(date +%H:%M:%S)" "$C_OFF"
}

ms() {  # seconds → "123 ms" (or "-")
  [[ -z ${1:-} || $1 == null ]] && { echo "-"; return; }
  awk -v s="$1" 'BEGIN { printf (s < 10 ? "%.0f ms" : "%.1f s"), (s < 10 ? s * 1000 : s) }'
}

# histogram_quantile Q NAME [label=value ...] < scrape: like PromQL's, over cumulative buckets
# summed across endpoints; linear inside a bucket, the last finite bound when in +Inf. Empty if no data.
histogram_quantile() {
  local q=$1 name=$2; shift 2
  metric_by le "${name}_bucket" "$@" | awk '{ print ($1 == "+Inf" ? "inf" : $1), $2 }' | sort -g |
    awk -v q="$q" '
      { le[NR] = $1; count[NR] = $2 }
      END {
        if (NR == 0 || count[NR] == 0) exit
        rank = q * count[NR]; prev_le = 0; prev_count = 0
        for (i = 1; i <= NR; i++) {
          if (count[i] >= rank) {
            if (le[i] == "inf") { printf "%.6g\n", prev_le; exit }
            width = count[i] - prev_count
            printf "%.6g\n", prev_le + (le[i] - prev_le) * (width > 0 ? (rank - prev_count) / width : 1); exit
          }
          prev_le = le[i]; prev_count = count[i]
        }
      }'
}
