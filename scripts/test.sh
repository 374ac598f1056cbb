#!/usr/bin/env bash
# Every test of the project, from a fresh machine: formatting, lints, unit, property,
# model-checking and simulator tests (including the planted-bug tests).
# Installs what it needs that the machine lacks: rustfmt and clippy, Debian's etcd-client.
set -euo pipefail
cd "$(dirname "$0")/.."

# Each step prints the minutes since the start, so a run's log shows where its time goes
# (the CI budget is about 35 minutes on 2 cores).
step() { printf '\n==> [%dm%02ds] %s\n' $((SECONDS / 60)) $((SECONDS % 60)) "$*"; }

step "toolchain components"
for component in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^${component}"; then
    rustup component add "$component"
  fi
done

step "etcdctl and etcd 3.4 (the interop tests drive the real etcdctl; etcd_migrate and bench-membership start a real etcd)"
if ! command -v etcdctl >/dev/null 2>&1 || [ ! -x /usr/bin/etcd ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y etcd-client etcd-server || { $sudo apt-get update && $sudo apt-get install -y etcd-client etcd-server; }
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets -- -D warnings

step "cargo test (workspace)"
# Every failing test binary is reported, not only the first: one run shows all that is red.
cargo test --workspace --no-fail-fast

step "model checks with planted bugs: stateright must find each counterexample"
cargo test -p synod-paxos --features planted-bugs --lib --test model_synod --test model_multi --test model_reconfig --test model_disk --test model_commit --test model_epaxos --test model_fast planted

step "storage with its planted bug: a log that acknowledges before syncing loses data"
cargo test -p synod-storage --features planted-bugs

step "kv with its planted bug: a watch checked on its first key only must be caught showing a key outside the grant"
cargo test -p synod-kv --features planted-bugs --test auth planted

# The binary the process tests of the workspace step ran (`cargo test` builds it in the test
# profile: opt-level 1, about 1.4x release's CPU per simulated seed). The steps below use it, so
# the test command builds no release `synod` (a release build took 6 of CI's 35 minutes).
SYNOD=target/debug/synod
[ -x "$SYNOD" ] || { echo "the workspace tests should have built $SYNOD" >&2; exit 1; }

step "synod sim: a short campaign through the command line"
"$SYNOD" sim --seeds 0..200 --nodes 5 --faults all
"$SYNOD" sim --seeds 0..200 --nodes 3 --faults disk
"$SYNOD" sim --seeds 0..1000 --nodes 5 --faults all --quorums swarm
"$SYNOD" sim --protocol fast --seeds 0..2000 --nodes 5
"$SYNOD" sim --protocol epaxos --seeds 0..2000 --nodes 3
# Cheap Paxos: about 7 ms of CPU per seed in release (a main dropped in about half of them).
"$SYNOD" sim --protocol cheap --seeds 0..2000 --nodes 3
# Leader leases, clocks drifting within a 10 % bound: about 8 ms of CPU a seed in release (the
# 10,000-seed figures are in ARCHITECTURE.md, "Leader leases").
"$SYNOD" sim --leases --drift 100000 --seeds 0..2000 --nodes 3

step "synod sim --member: 2,000 seeds of three real members (sessions, read-index, leases, snapshots, watches) under etcd clients and every network fault and crash point"
# About 32 seeds per CPU-second in the test profile (about 60 CPU-seconds for these).
"$SYNOD" sim --member --seeds 0..2000 --nodes 3 --faults all

step "fuzz targets, short version: the seed corpus through every target's checks (scripts/fuzz.sh runs the fuzzers)"
(cd fuzz && CARGO_TARGET_DIR="$PWD/../target/fuzz-seeds" cargo test --lib --quiet)

step "synod chaos: 5 real members on 127.0.0.11-15 for 2 minutes, every fault kind at least twice, then a planted stale read that must be caught"
"$SYNOD" chaos --minutes 2 --seed 1
# --plant-stale-reads records serializable reads as linearizable; this run passes only if the
# linearizability check catches the stale answers.
"$SYNOD" chaos --minutes 0.5 --seed 1 --faults isolate,pause,one-way --min-fires 1 --plant-stale-reads

step "explorer in a real browser (Debian's chromium, npm's playwright-core)"
if [ ! -x /usr/bin/chromium ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get install -y chromium || { $sudo apt-get update && $sudo apt-get install -y chromium; }
fi
[ -d crates/explore/e2e/node_modules/playwright-core ] || (cd crates/explore/e2e && npm ci --no-audit --no-fund)
# "Break it" needs the planted bugs compiled in (they stay off unless a session asks).
cargo test -p synod-explore --features planted-bugs
# `cargo test` built the examples too, in the test profile and with the planted bugs: the page is
# served by `explore_server`, which runs `synod explore`'s own code (`explore::run_cli`).
(cd crates/explore/e2e && EXPLORE_BIN="$PWD/../../../target/debug/examples/explore_server" \
  EXPLORE_ARGS="--port 0" TRACE_BIN="$PWD/../../../target/debug/examples/sim_trace" node --test)

step "done"
