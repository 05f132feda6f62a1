#!/usr/bin/env bash
# Response cache statistics: hits, misses, store errors and hit rate from the gateway's /metrics,
# plus Redis's own counters when REDIS_URL is set and redis-cli is installed.
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

now=$(scrape)
header "aiub cache"
require_stack
hits=$(metric_sum cache_hits_total <<<"$now")
misses=$(metric_sum cache_misses_total <<<"$now")
errors=$(metric_sum cache_errors_total <<<"$now")
if [[ -z $hits && -z $misses ]]; then
  echo "no cache metrics (is the gateway's /metrics among the endpoints? set AIUB_METRICS)"
  exit 1
fi
rate=$(awk -v h="${hits:-0}" -v m="${misses:-0}" 'BEGIN { if (h + m > 0) printf "%.1f%%", 100 * h / (h + m); else print "-" }')
echo "hits ${hits:-0}   misses ${misses:-0}   hit rate $rate   store errors (bypassed) ${errors:-0}"
gauge=$(metric_sum cache_hit_rate <<<"$now")
[[ -n $gauge ]] && echo "cache_hit_rate gauge $gauge"
if [[ -n ${REDIS_URL:-} ]] && command -v redis-cli >/dev/null 2>&1; then
  info=$(redis-cli -u "$REDIS_URL" INFO stats 2>/dev/null | tr -d '\r')
  memory=$(redis-cli -u "$REDIS_URL" INFO memory 2>/dev/null | tr -d '\r' | awk -F: '$1 == "used_memory_human" { print $2 }')
  keys=$(redis-cli -u "$REDIS_URL" DBSIZE 2>/dev/null)
  echo "redis: keys ${keys:-?}   memory ${memory:-?}   keyspace hits $(awk -F: '$1 == "keyspace_hits" { print $2 }' <<<"$info")" \
       "  misses $(awk -F: '$1 == "keyspace_misses" { print $2 }' <<<"$info")"
fi
exit 0
