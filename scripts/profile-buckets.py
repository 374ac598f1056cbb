#!/usr/bin/env python3
"""Buckets a callgrind_annotate self-cost listing (every function: --threshold=100) by
subsystem, from each function's symbol and source file; prints instructions per put.

    scripts/profile-buckets.py FILE.self.txt PUTS
"""
import re
import sys

# First match wins; patterns are searched in "file:symbol".
BUCKETS = [
    ("gRPC (tonic, h2, hyper, prost, http, tower)", r"tonic|/h2-|h2::|hyper|prost|/http-|http::|tower|etcd_proto|httparse|axum"),
    ("peer envelope codec (postcard, serde)", r"postcard|serde|member::peer|member/src/peer"),
    ("peer transport (transport crate)", r"transport::|crates/transport"),
    ("WAL (storage crate, crc)", r"storage::|crates/storage|crc"),
    ("apply (kv store)", r"kv::|crates/kv|imbl|rpds|im::"),
    ("Paxos core (paxos crate)", r"paxos::|crates/paxos"),
    ("member (sessions, forwarding, outputs)", r"member::|crates/member"),
    ("node driver (core, service, convert, metrics)", r"node::|crates/node|prometheus"),
    ("tokio runtime, mio, parking", r"tokio|mio::|parking_lot|crossbeam|futures"),
    ("tracing", r"tracing"),
    ("allocator, memcpy, libc", r"malloc|free|realloc|memcpy|memmove|memset|memcmp|libc|ld-linux|alloc::|_int_|cfree|calloc"),
]


def main():
    path, puts = sys.argv[1], int(sys.argv[2])
    totals = {name: 0 for name, _ in BUCKETS}
    other = 0
    total = 0
    line_re = re.compile(r"^\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(\S.*)$")
    started = False
    program = None
    for line in open(path, errors="replace"):
        if "PROGRAM TOTALS" in line:
            program = int(line.split()[0].replace(",", ""))
            continue
        if "file:function" in line:
            started = True
            continue
        if not started:
            continue
        if line.startswith("-- Auto-annotated") or (total and not line.strip()):
            break
        m = line_re.match(line)
        if not m:
            continue
        count = int(m.group(1).replace(",", ""))
        what = m.group(2)
        # A dump taken while threads run charges the frames on their stacks (thread start,
        # the tokio worker loop) with everything below them: not their own cost.
        if program and count > program // 2:
            continue
        total += count
        for name, pat in BUCKETS:
            if re.search(pat, what):
                totals[name] += count
                break
        else:
            other += count
    print(f"{'subsystem':50} {'instr/put':>10} {'share':>6}")
    for name, _ in BUCKETS:
        print(f"{name:50} {totals[name] // puts:>10} {100 * totals[name] / max(total, 1):5.1f}%")
    print(f"{'other':50} {other // puts:>10} {100 * other / max(total, 1):5.1f}%")
    print(f"{'total':50} {total // puts:>10}")
    if program:
        print(f"{'program total (callgrind summary)':50} {program // puts:>10}")


main()
