#!/usr/bin/env bash
# Provider status matrix: state, since when, admitted share, last probe, reason (from `aiub status --json`).
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

status=$(status_json) || { echo "${C_RED}cannot read provider states (is the stack up? see aiub status)${C_OFF}"; exit 1; }
header "aiub providers"
require_stack
if [[ $(jq -r '.stale' <<<"$status") == true ]]; then
  echo "${C_YELLOW}states may be STALE: no recent heartbeat from the health service${C_OFF}"
fi
now=$(date +%s)
printf '%-2s %-20s %-12s %-8s %-6s %-9s %s\n' "" PROVIDER STATE SINCE ADMIT PROBE REASON
jq -r '.providers[] | [.provider, .state, (.since // 0), (.admit_fraction // 1),
        (.probe_latency_s // (if .probe_latency_ms then .probe_latency_ms / 1000 else null end) // "null"),
        (.reason // "")] | @tsv' <<<"$status" |
while IFS=$'\t' read -r provider state since admit probe reason; do
  age=$(awk -v n="$now" -v s="$since" 'BEGIN { d = n - s; if (s == 0) print "-"; else if (d < 60) printf "%ds", d;
        else if (d < 3600) printf "%dm", d / 60; else printf "%.1fh", d / 3600 }')
  printf '%-2s %-20s %-12s %-8s %-6s %-9s %s\n' "$(state_icon "$state")" "$provider" "$state" "$age" "$admit" \
    "$(ms "$probe")" "$reason"
done
