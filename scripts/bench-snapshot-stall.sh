#!/usr/bin/env bash
# How long a large store's periodic snapshot holds up writes: 3 members on loopback with
# --snapshot-count 5000, a store of 100 K keys x 1 KiB (about 160 MB with history), then 20 s
# of puts from 32 clients. Prints throughput, p50/p99/p999/max latency and the raft term
# before and after (a change means the stall cost an election).
#
# usage: scripts/bench-snapshot-stall.sh [path/to/synod]   (default: target/release/synod)
# Needs etcdctl (scripts/test.sh installs it). Uses ports PORT_BASE..PORT_BASE+5 on 127.0.0.1
# (PORT_BASE defaults to 27379).
set -euo pipefail
BIN=${1:-target/release/synod}
P=${PORT_BASE:-27379}
# SNAPSHOT_COUNT=100000000 gives the same run without snapshots (the idle figure to compare).
SNAPSHOT_COUNT=${SNAPSHOT_COUNT:-5000}
[ -x "$BIN" ] || { echo "no $BIN: cargo build --release -p synod" >&2; exit 2; }
D=$(mktemp -d /tmp/synod-snapshot-stall-XXXX)
pids=()
cleanup() { kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$D"; }
trap cleanup EXIT
IC="a=http://127.0.0.1:$((P + 1)),b=http://127.0.0.1:$((P + 3)),c=http://127.0.0.1:$((P + 5))"
i=0
for n in a b c; do
  cp=$((P + 2 * i)); pp=$((P + 1 + 2 * i))
  "$BIN" node --name $n --data-dir "$D/$n" --listen-client-urls http://127.0.0.1:$cp \
    --listen-peer-urls http://127.0.0.1:$pp --initial-cluster "$IC" --initial-cluster-token stall \
    --snapshot-count "$SNAPSHOT_COUNT" --wal-segment-bytes 16777216 > "$D/$n.log" 2>&1 &
  pids+=($!)
  i=$((i + 1))
done
sleep 3
EPS=http://127.0.0.1:$P,http://127.0.0.1:$((P + 2)),http://127.0.0.1:$((P + 4))
term() {
  ETCDCTL_API=3 etcdctl --endpoints 127.0.0.1:$P endpoint status -w json |
    python3 -c "import json,sys; print(json.load(sys.stdin)[0]['Status']['raftTerm'])"
}
load() { "$BIN" bench --endpoints $EPS --workload put --clients 32 --key-space 100000 --value-size 1024 --no-progress "$@"; }
load --total 100000 > /dev/null
t0=$(term)
load --duration 20s --json "$D/r.json" > /dev/null
t1=$(term)
python3 - "$D/r.json" "$t0" "$t1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
v = r['by_op']['put']; l = v['latency']
print(f"put {v['throughput_ops_per_sec']:.0f}/s  p50 {l['p50_us']} us  p99 {l['p99_us']} us  "
      f"p999 {l['p999_us']} us  max {l['max_us']} us  errors {r['errors']}  term {sys.argv[2]} -> {sys.argv[3]}")
PY
