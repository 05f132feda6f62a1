#!/usr/bin/env bash
# Prometheus metrics sampler: the spec's metrics summed over every service's /metrics.
#   litellm-metrics.sh          totals since each service started
#   litellm-metrics.sh -i 10    also rates over a 10 s sample (for before/after comparisons)
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

interval=${AIUB_SAMPLE_S:-0}
[[ ${1:-} == -i ]] && interval=${2:?usage: litellm-metrics.sh [-i SECONDS]}

first=$(scrape)
if ((interval > 0)); then
  sleep "$interval"
  now=$(scrape)
else
  now=$first
fi
all=$(metrics_urls | wc -l)
down=$(grep -c '^# DOWN' <<<"$now")
header "aiub metrics"
require_stack
echo "endpoints $((all - down))/$all up$( ((down > 0)) && printf '  %s(down: %s)%s' "$C_RED" "$(grep '^# DOWN' <<<"$now" | cut -d' ' -f3 | paste -sd' ')" "$C_OFF")"
printf 'active_connections %s   request_queue_size %s   total_throughput_tokens_per_second %s\n' \
  "$(metric_sum active_connections <<<"$now" || true)" "$(metric_sum request_queue_size <<<"$now")" \
  "$(metric_sum total_throughput_tokens_per_second <<<"$now")"

printf '%-20s %9s %7s %9s %9s %9s %9s' PROVIDER REQUESTS ERRORS "TTFT p95" "p95" "avg" ROUTED
((interval > 0)) && printf ' %8s' "req/s"
echo
while read -r provider requests; do
  [[ -z $provider ]] && continue
  errors=$(metric_sum provider_errors_total "provider=$provider" <<<"$now")
  count=$(metric_sum provider_latency_seconds_count "provider=$provider" phase=total <<<"$now")
  total=$(metric_sum provider_latency_seconds_sum "provider=$provider" phase=total <<<"$now")
  avg=$(awk -v s="${total:-0}" -v c="${count:-0}" 'BEGIN { if (c > 0) print s / c }')
  printf '%-20s %9s %7s %9s %9s %9s %9s' "$provider" "$requests" "${errors:-0}" \
    "$(ms "$(histogram_quantile 0.95 provider_latency_seconds "provider=$provider" phase=ttft <<<"$now")")" \
    "$(ms "$(histogram_quantile 0.95 provider_latency_seconds "provider=$provider" phase=total <<<"$now")")" \
    "$(ms "$avg")" "$(metric_sum router_load_balance_distribution_total "provider=$provider" <<<"$now")"
  if ((interval > 0)); then
    before=$(metric_sum provider_requests_total "provider=$provider" <<<"$first")
    printf ' %8s' "$(awk -v a="${before:-0}" -v b="$requests" -v t="$interval" 'BEGIN { printf "%.1f", (b - a) / t }')"
  fi
  echo
done < <(metric_by provider provider_requests_total <<<"$now")

decisions=$(metric_by strategy router_routing_decisions_total <<<"$now" | awk '{ printf "%s %s  ", $1, $2 }')
[[ -n $decisions ]] && echo "routing decisions: $decisions"
fallbacks=$(metric_by original_provider router_fallback_triggered_total <<<"$now" | awk '{ printf "%s %s  ", $1, $2 }')
[[ -n $fallbacks ]] && echo "${C_YELLOW}fallbacks from: $fallbacks${C_OFF}"
down_providers=$(metric_by provider provider_availability <<<"$now" | awk '$2 == 0 { printf "%s ", $1 }')
[[ -n $down_providers ]] && echo "${C_RED}provider_availability 0: $down_providers${C_OFF}"
exit 0
