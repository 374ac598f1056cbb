#!/usr/bin/env bash
# Issue 18's whole-store test, as `cargo xtask bench-snapshot-stall` runs it: 3 Synod members
# with a store of --store-mib MiB in 1 KiB values (default 1024: 1 M keys), put latency from
# closed-loop writers first on the idle store, then while a follower is wiped and catches up by
# snapshot and a client ranges over every key, asks every member for HashKV and takes a
# backup. Prints p50/p99/p99.9/max in both phases and their p99 ratio, each task's time, and
# whether the leader changed. Uses loopback ports 30000-30005 unless --port-base says.
#
# usage: scripts/bench-snapshot-stall.sh [--store-mib N] [--synod-bin PATH] [...]
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo xtask bench-snapshot-stall "$@"
