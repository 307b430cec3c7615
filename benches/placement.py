#!/usr/bin/env python3
"""Runs shmkit's bench binary and the C reference beside two busy processes, in each way the
scheduler can place them on a 2-core machine, and prints each system's median per placement.

Beside two busy processes (`side_by_side.py --load 2`) a run's speed depends mostly on where
the scheduler puts the benchmark's processes when they start, and a run keeps that placement
(`perf stat -e cpu-migrations` counts 0 to 13 migrations in a 200,000-trip pingpong). A
harness median of 5 runs is then a draw of placements. This script fixes the placement with
`taskset`, so that the two systems are compared in the same one:

    A  both busy processes on cpu 1, the benchmark on cpu 0 (its processes share one core)
    B  one busy process on each cpu, the benchmark on cpu 0 (it shares a core with one)
    C  one busy process on each cpu, the benchmark free (its processes are usually split,
       each beside a busy process)

Usage:
    python3 benches/placement.py ROUNDS SCENARIO[,SCENARIO...] SHMKIT_BENCH C_REF [A,B,C]

SHMKIT_BENCH is the bench binary (`ls -t target/release/deps/scenarios-*` after `cargo bench
--no-run`), C_REF the C reference that side_by_side.py builds (/tmp/shmkit_c_ref). Runs
alternate between the two systems. Needs a machine with at least 2 cpus and `taskset`.
"""
import os
import statistics
import subprocess
import sys

from interleave import run_scenarios  # this script's folder is on sys.path

PLACEMENTS = {
    # name: (cpu of each busy process, cpus of the benchmark or None for all)
    "A": ((1, 1), "0"),
    "B": ((0, 1), "0"),
    "C": ((0, 1), None),
}


def ops(cmd, scenario):
    got = run_scenarios(cmd, [scenario])
    if scenario not in got:
        raise SystemExit(f"{cmd[-1]} {scenario} printed no result")
    return got[scenario]


def main():
    if len(sys.argv) < 5 or os.cpu_count() < 2:
        sys.exit(__doc__)
    rounds, scenarios = int(sys.argv[1]), sys.argv[2].split(",")
    systems = {"shmkit": sys.argv[3], "c-ref": sys.argv[4]}
    wanted = sys.argv[5].split(",") if len(sys.argv) > 5 else list(PLACEMENTS)
    print(f"{'placement':<10}{'scenario':<14}{'shmkit ops/s':>14}{'c-ref ops/s':>14}"
          f"{'x c-ref':>9}  runs (shmkit / c-ref)")
    for name in wanted:
        busy_cpus, bench_cpus = PLACEMENTS[name]
        busy = [subprocess.Popen(["taskset", "-c", str(c), sys.executable, "-c",
                                  "while True: pass"]) for c in busy_cpus]
        try:
            for s in scenarios:
                got = {k: [] for k in systems}
                for _ in range(rounds):
                    for k, path in systems.items():
                        pin = ["taskset", "-c", bench_cpus] if bench_cpus else []
                        got[k].append(ops(pin + [path], s))
                a, c = (statistics.median(got[k]) for k in systems)
                runs = " ".join(f"{x / 1e3:.0f}k" for x in got["shmkit"]) + " / " + \
                    " ".join(f"{x / 1e3:.0f}k" for x in got["c-ref"])
                print(f"{name:<10}{s:<14}{a:>14,.0f}{c:>14,.0f}{a / c:>9.2f}  {runs}", flush=True)
        finally:
            for p in busy:
                p.kill()
                p.wait()


if __name__ == "__main__":
    main()
