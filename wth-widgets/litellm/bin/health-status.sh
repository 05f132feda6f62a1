#!/usr/bin/env bash
# Service health overview: gateway readiness, health-service heartbeat, routable providers, metrics endpoints.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

header "aiub health"
require_stack
gateway=$(gateway_url)
if ready=$(curl -fsS --max-time 2 "$gateway/ready" 2>/dev/null) && [[ $(jq -r '.ready' <<<"$ready") == true ]]; then
  echo "$(state_icon active) gateway    ready ($gateway)"
else
  echo "$(state_icon unavailable) gateway    NOT ready ($gateway)"
fi

if status=$(status_json 2>/dev/null); then
  if [[ $(jq -r '.stale' <<<"$status") == true ]]; then
    echo "$(state_icon degraded) health     no recent heartbeat: provider states may be stale"
  else
    echo "$(state_icon active) health     leader $(jq -r '.leader // "?"' <<<"$status"), heartbeat $(jq -r \
      '.heartbeat_age_s // 0 | . * 10 | round / 10' <<<"$status")s ago"
  fi
  total=$(jq '.providers | length' <<<"$status")
  routable=$(jq '[.providers[] | select(.routable // (.state != "unavailable"))] | length' <<<"$status")
  down=$(jq -r '[.providers[] | select(.state == "unavailable") | .provider] | join(", ")' <<<"$status")
  if ((total == 0)); then  # none is not "all": grey, not green
    echo "${C_DIM}⚪ providers  none reported yet${C_OFF}"
  else
    icon=$([[ $routable == "$total" ]] && state_icon active || state_icon degraded)
    echo "$icon providers  $routable/$total routable${down:+  (down: $down)}"
  fi
else
  echo "$(state_icon unavailable) health     cannot read provider states (aiub status failed)"
fi

up=0 all=0
while read -r url; do
  all=$((all + 1))
  curl -fsS --max-time 2 -o /dev/null "$url" 2>/dev/null && up=$((up + 1))
done < <(metrics_urls)
if ((all == 0)); then
  echo "⚪ metrics    no endpoints known (set AIUB_METRICS or start with aiub up)"
else
  icon=$([[ $up == "$all" ]] && state_icon active || state_icon unavailable)
  echo "$icon metrics    $up/$all endpoints up"
fi
