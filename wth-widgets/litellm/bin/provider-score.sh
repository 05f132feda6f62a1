#!/usr/bin/env bash
# Performance score per provider, the usage-based strategy's weighting: latency 0.4, success 0.4,
# cost 0.2 (cost is not in the metrics, so every provider gets the full 0.2). Latency score is the
# fastest provider's average total latency over this one's; success counts upstream failures only.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

now=$(scrape)
header "aiub provider score"
require_stack
rows=$(metric_by provider provider_requests_total <<<"$now" | while read -r provider requests; do
  ok=$(metric_sum provider_requests_total "provider=$provider" outcome=ok <<<"$now")
  excused=0
  for kind in client_error cancelled; do
    n=$(metric_sum provider_requests_total "provider=$provider" "outcome=$kind" <<<"$now")
    excused=$(awk -v a="$excused" -v b="${n:-0}" 'BEGIN { print a + b }')
  done
  count=$(metric_sum provider_latency_seconds_count "provider=$provider" phase=total <<<"$now")
  total=$(metric_sum provider_latency_seconds_sum "provider=$provider" phase=total <<<"$now")
  p95=$(histogram_quantile 0.95 provider_latency_seconds "provider=$provider" phase=total <<<"$now")
  echo "$provider ${requests} ${ok:-0} $excused ${count:-0} ${total:-0} ${p95:-null}"
done)
if [[ -z $rows ]]; then
  echo "no provider metrics yet (no worker endpoint answered, or no requests served)"
  exit 1
fi
printf '%-20s %6s %8s %9s %9s %9s\n' PROVIDER SCORE SUCCESS "avg" "p95" REQUESTS
awk '
  { provider[NR] = $1; requests[NR] = $2; judged = $2 - $4
    success[NR] = judged > 0 ? $3 / judged : 1
    avg[NR] = $5 > 0 ? $6 / $5 : -1; p95[NR] = $7
    if (avg[NR] > 0 && (fastest == 0 || avg[NR] < fastest)) fastest = avg[NR] }
  END {
    for (i = 1; i <= NR; i++) {
      latency = (avg[i] > 0 && fastest > 0) ? fastest / avg[i] : 0
      score = 0.4 * latency + 0.4 * success[i] + 0.2
      printf "%s %.2f %.1f%% %s %s %s\n", provider[i], score, 100 * success[i], avg[i], p95[i], requests[i]
    }
  }' <<<"$rows" | sort -k2,2gr | while read -r provider score success avg p95 requests; do
  [[ $avg == -1 ]] && avg=null
  printf '%-20s %6s %8s %9s %9s %9s\n' "$provider" "$score" "$success" "$(ms "$avg")" "$(ms "$p95")" "$requests"
done
