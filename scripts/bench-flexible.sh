#!/usr/bin/env bash
# Flexible Paxos against majorities, 5 real members on loopback, one run:
#   put throughput and latency (32 clients through the leader's endpoint), then election time
#   (kill -9 the leader; time until a put succeeds again at another member), per rule.
# Usage: scripts/bench-flexible.sh [SYNOD_BINARY] [SECONDS] [RULES...]
#   default: target/release/synod, 10 s, rules "majority flexible:4,2"
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/synod}
SECS=${2:-10}
shift 2 2>/dev/null || shift $# 2>/dev/null || true
RULES=("$@")
[ ${#RULES[@]} -gt 0 ] || RULES=(majority flexible:4,2)
ETCDCTL=$(command -v etcdctl)
export ETCDCTL_API=3
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

now_ms() { date +%s%3N; }

for rule in "${RULES[@]}"; do
  base=$((20000 + RANDOM % 20000))
  cluster=""
  for i in 1 2 3 4 5; do cluster+="n$i=http://127.0.0.1:$((base + 10 * i + 1)),"; done
  cluster=${cluster%,}
  pids=()
  endpoints=()
  for i in 1 2 3 4 5; do
    c=$((base + 10 * i)); p=$((c + 1))
    SYNOD_WAL_SEGMENT_BYTES=$((16 << 20)) "$BIN" node --name "n$i" --data-dir "$work/$rule-n$i" \
      --listen-client-urls "http://127.0.0.1:$c" --listen-peer-urls "http://127.0.0.1:$p" \
      --initial-cluster "$cluster" --initial-cluster-token "bench-$rule-$base" \
      --quorums "$rule" >"$work/$rule-n$i.log" 2>&1 &
    pids+=($!)
    endpoints+=("127.0.0.1:$c")
  done
  all=$(IFS=,; echo "${endpoints[*]}")
  until "$ETCDCTL" --endpoints="$all" put warmup 1 >/dev/null 2>&1; do sleep 0.2; done
  # The leader: the member whose id is the leader every status names.
  leader=""
  for i in 0 1 2 3 4; do
    st=$("$ETCDCTL" --endpoints="${endpoints[$i]}" endpoint status -w json)
    id=$(echo "$st" | python3 -c 'import json,sys; s=json.load(sys.stdin)[0]["Status"]; print(s["header"]["member_id"], s["leader"])')
    set -- $id
    if [ "$1" = "$2" ]; then leader=$i; fi
  done
  echo "== $rule: leader n$((leader + 1))"
  "$BIN" bench --endpoints "http://${endpoints[$leader]}" --workload put --clients 32 --duration "${SECS}s" | sed 's/^/   /'
  # Election time: kill -9 the leader, then put through the others until one succeeds.
  others=$(for i in 0 1 2 3 4; do [ "$i" = "$leader" ] || printf '%s,' "${endpoints[$i]}"; done)
  others=${others%,}
  kill -9 "${pids[$leader]}"
  t0=$(now_ms)
  wait "${pids[$leader]}" 2>/dev/null || true
  until "$ETCDCTL" --endpoints="$others" --command-timeout=1s put after-kill 1 >/dev/null 2>&1; do sleep 0.05; done
  t1=$(now_ms)
  echo "   election: first put after killing the leader succeeded in $((t1 - t0)) ms"
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
done
