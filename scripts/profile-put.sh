#!/usr/bin/env bash
# Instructions per replicated put, member by member, counted by callgrind (repeatable on a
# loaded machine, unlike wall-clock throughput): issue 18's "where the time goes".
#
# Starts a 3-member Synod on loopback (127.0.0.61-63, ports 4371/4372), every member under
# `valgrind --tool=callgrind`, warms it up, zeroes the counters, drives PUTS puts (256 B
# values, CLIENTS concurrent clients spread over every member, as bench-vs-etcd does), dumps
# the counters, stops the members with SIGTERM, and prints instructions per put for each
# member (leader marked), its instructions by subsystem (scripts/profile-buckets.py, from
# each function's own cost), and `callgrind_annotate` listings in OUT.
#
#   scripts/profile-put.sh [OUT_DIR]            (env: PUTS=5000 CLIENTS=32 BIN=target/release/synod)
#
# Build first: cargo build --release -p synod (the release profile keeps line tables).
# The election timeout is raised (valgrind slows the members some 50x); heartbeats every
# 500 ms cost nothing measurable per put.
set -euo pipefail
cd "$(dirname "$0")/.."
PUTS=${PUTS:-5000}
CLIENTS=${CLIENTS:-32}
BIN=${BIN:-target/release/synod}
OUT=${1:-$(mktemp -d /tmp/profile-put.XXXXXX)}
mkdir -p "$OUT"
IPS=(127.0.0.61 127.0.0.62 127.0.0.63)
CLUSTER="n1=http://${IPS[0]}:4372,n2=http://${IPS[1]}:4372,n3=http://${IPS[2]}:4372"
ENDPOINTS="http://${IPS[0]}:4371,http://${IPS[1]}:4371,http://${IPS[2]}:4371"
PIDS=()
cleanup() {
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT
for i in 0 1 2; do
    n=n$((i + 1))
    rm -rf "$OUT/$n"
    mkdir -p "$OUT/$n"
    valgrind --tool=callgrind --callgrind-out-file="$OUT/$n.cg" \
        "$BIN" node --name "$n" --data-dir "$OUT/$n/data" \
        --listen-client-urls "http://${IPS[$i]}:4371" \
        --listen-peer-urls "http://${IPS[$i]}:4372" \
        --initial-cluster "$CLUSTER" --initial-cluster-token profile-put \
        --heartbeat-interval 500 --election-timeout 5000 --log-level warn \
        >"$OUT/$n/member.log" 2>&1 &
    PIDS+=($!)
done
# Ready: a few puts through every member succeed.
for _ in $(seq 1 120); do
    if "$BIN" bench --endpoints "$ENDPOINTS" --workload put --clients 3 --total 30 \
        --no-progress --request-timeout 20s >"$OUT/warmup.txt" 2>&1 &&
        ! grep -q 'errors *[1-9]' "$OUT/warmup.txt"; then
        break
    fi
    sleep 2
done
# Warm-up at the measured concurrency, so connections, tables and buffers are grown.
"$BIN" bench --endpoints "$ENDPOINTS" --workload put --clients "$CLIENTS" --total 1000 \
    --key-space 100000 --value-size 256 --no-progress --request-timeout 60s >>"$OUT/warmup.txt" 2>&1
for p in "${PIDS[@]}"; do callgrind_control -z "$p" >/dev/null; done
"$BIN" bench --endpoints "$ENDPOINTS" --workload put --clients "$CLIENTS" --total "$PUTS" \
    --key-space 100000 --value-size 256 --no-progress --request-timeout 60s \
    --json "$OUT/bench.json" >"$OUT/bench.txt" 2>&1
for p in "${PIDS[@]}"; do callgrind_control -d "$p" >/dev/null; done
LEADER=""
for i in 0 1 2; do
    if curl -s "http://${IPS[$i]}:4371/metrics" | grep -q '^etcd_server_is_leader 1'; then
        LEADER=n$((i + 1))
    fi
done
cleanup
wait || true
PIDS=()
echo "puts: $PUTS, clients: $CLIENTS, leader: ${LEADER:-unknown}; files in $OUT"
for i in 0 1 2; do
    n=n$((i + 1))
    # The dump after the run (suffix .1) holds the counts since the zeroing.
    f=$(ls "$OUT/$n.cg".*1 2>/dev/null | head -1 || true)
    [ -n "$f" ] || f="$OUT/$n.cg"
    total=$(grep -m1 '^summary:' "$f" | awk '{print $2}')
    role=follower
    [ "$n" = "$LEADER" ] && role=leader
    echo "$n ($role): $total instructions, $((total / PUTS)) per put"
    callgrind_annotate --inclusive=yes --threshold=99 "$f" >"$OUT/$n.inclusive.txt" 2>/dev/null || true
    callgrind_annotate --threshold=100 "$f" >"$OUT/$n.self.txt" 2>/dev/null || true
    scripts/profile-buckets.py "$OUT/$n.self.txt" "$PUTS" | tee "$OUT/$n.buckets.txt"
done
