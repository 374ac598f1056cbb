#!/usr/bin/env python3
"""Cheap Paxos against Multi-Paxos on the same machines, normal case (no faults): peer messages
and fsyncs (persist batches) per chosen slot, from the simulator's traces.
Usage: scripts/bench-cheap.py [SYNOD_BINARY] [NODES] [SEEDS]"""
import json, subprocess, sys, tempfile, os, collections
binary = sys.argv[1] if len(sys.argv) > 1 else "target/release/synod"
nodes = int(sys.argv[2]) if len(sys.argv) > 2 else 3
seeds = int(sys.argv[3]) if len(sys.argv) > 3 else 10
rows = []
for proto in ["multi-paxos", "cheap"]:
    msgs = fsyncs = slots = 0
    to_aux = 0
    kinds = collections.Counter()
    for seed in range(seeds):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "t.jsonl")
            subprocess.run([binary, "sim", "--protocol", proto, "--seed", str(seed), "--nodes", str(nodes),
                            "--faults", "none", "--trace", path], check=True, stdout=subprocess.DEVNULL)
            with open(path) as f:
                next(f)
                chosen = set()
                for line in f:
                    e = json.loads(line)
                    if e["ev"] == "send" and e["from"].startswith("n") and e["to"].startswith("n"):
                        msgs += 1
                        kinds[e["kind"]] += 1
                        if proto == "cheap" and int(e["to"][1:]) > nodes // 2 + 1:
                            to_aux += 1
                    elif e["ev"] == "persist":
                        fsyncs += 1
                    elif e["ev"] == "chosen":
                        chosen.add(e["slot"])
                slots += len(chosen)
    rows.append((proto, slots, msgs / slots, fsyncs / slots, to_aux, dict(kinds)))
print(f"{nodes} machines, {seeds} seeds, no faults")
print("| protocol | slots chosen | peer messages per slot | fsyncs per slot | messages to auxiliaries |")
print("|---|---|---|---|---|")
for proto, slots, m, s, aux, _ in rows:
    print(f"| {proto} | {slots} | {m:.2f} | {s:.2f} | {aux} |")
