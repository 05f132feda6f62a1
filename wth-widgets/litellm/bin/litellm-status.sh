#!/usr/bin/env bash
# Detailed status: where the stack is, the gateway's readiness, every /metrics endpoint, provider states.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

header "aiub status"
require_stack
gateway=$(gateway_url)
echo "stack     NATS $(stack_value nats_url || echo "${AIUB_NATS:-?}")   gateway $gateway   state $AIUB_STATE_DIR"
if ready=$(curl -fsS --max-time 2 "$gateway/ready" 2>/dev/null); then
  echo "gateway   /ready $(jq -c . <<<"$ready")"
else
  echo "${C_RED}gateway   /ready did not answer${C_OFF}"
fi
echo "endpoints"
while read -r url; do
  if curl -fsS --max-time 2 -o /dev/null "$url" 2>/dev/null; then
    echo "  ${C_GREEN}up${C_OFF}    $url"
  else
    echo "  ${C_RED}DOWN${C_OFF}  $url"
  fi
done < <(metrics_urls)
if status=$(status_json 2>/dev/null); then
  stale=$(jq -r 'if .stale then "  STALE" else "" end' <<<"$status")
  echo "providers (leader $(jq -r '.leader // "?"' <<<"$status")${stale})"
  jq -r '.providers[] | [.provider, .state, (.admit_fraction // 1), (.reason // "")] | @tsv' <<<"$status" |
    while IFS=$'\t' read -r provider state admit reason; do
      printf '  %s %-20s %-12s admit %-5s %s\n' "$(state_icon "$state")" "$provider" "$state" "$admit" "$reason"
    done
else
  echo "${C_RED}providers: aiub status failed (is NATS reachable?)${C_OFF}"
fi
