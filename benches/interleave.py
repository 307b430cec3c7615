#!/usr/bin/env python3
"""Runs benchmark binaries in turn, N rounds, and prints each one's median and spread per
scenario: for A/B comparisons of two builds (or of shmkit and the C reference) on a noisy
machine, where only runs taken side by side can be compared.

Usage:
    python3 benches/interleave.py ROUNDS SCENARIO[,SCENARIO...] BINARY[:VAR=VALUE...] ...

Each BINARY is run as `BINARY SCENARIO...` and must print the JSON lines of
../shared/peers/python_mp.py (shmkit's bench binary, found with `ls -t
target/release/deps/scenarios-*` after `cargo bench --no-run`, and the C reference
/tmp/shmkit_c_ref that side_by_side.py builds both do). VAR=VALUE pairs are added to that
binary's environment. Ratios are to the first binary's median.
"""
import json
import os
import statistics
import subprocess
import sys


def run_scenarios(cmd, scenarios, env=None):
    """Runs `cmd SCENARIO...` and returns each scenario's ops_per_s from its JSON lines."""
    out = subprocess.run(cmd + scenarios, capture_output=True, text=True, env=env)
    rows = (json.loads(line) for line in out.stdout.splitlines() if line.startswith("{"))
    return {row["scenario"]: row["ops_per_s"] for row in rows}


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    rounds, scenarios, binaries = int(sys.argv[1]), sys.argv[2].split(","), sys.argv[3:]
    results = {b: {s: [] for s in scenarios} for b in binaries}
    for _ in range(rounds):
        for b in binaries:
            path, *pairs = b.split(":")
            env = dict(os.environ)
            env.update(p.split("=", 1) for p in pairs)
            for scenario, ops in run_scenarios([path], scenarios, env).items():
                if scenario in results[b]:
                    results[b][scenario].append(ops)
    for s in scenarios:
        base = None
        for b in binaries:
            runs = sorted(results[b][s])
            if not runs:
                print(f"{s:22} {b:40} no result")
                continue
            m = statistics.median(runs)
            base = base or m
            spread = " ".join(f"{x:.0f}" for x in runs)
            print(f"{s:22} {b:40} median {m:14.1f}  ratio {m / base:5.2f}  [{spread}]")


if __name__ == "__main__":
    main()
