#!/usr/bin/env python3
"""Summarises a run of the allocator benchmarks for docs/performance.md.

Usage (from Benchmarks/), for one or more runs:
    mkdir -p .build/results-1
    swift package --allow-writing-to-directory .build/results-1 benchmark \\
        --format histogramPercentiles --path .build/results-1 --no-progress
    python3 summarize.py .build/results-1 [.build/results-2 ...]

Prints, per workload, the time per operation at each N, the ratio of N=1M to N=1k and
the heap held per live allocation at N=1M, once for the median sample (p50) and once for
the fastest (p0), then the issue 2 targets that they miss. Given several runs, each
figure is the lowest over the runs (the run least disturbed by other load on a shared
machine)."""
import pathlib
import re
import sys

SIZES = [1_000, 10_000, 100_000, 1_000_000]
METRICS = {"Time_per_op_(ps)": "ps", "Heap_per_live_alloc_(B)": "heap"}
SCALE = {"K": 1e3, "M": 1e6, "G": 1e9}
PATTERN = re.compile(r"\.AllocatorBenchmarks\.([WI]\d)_(\w+)_N=(\d+)\.(.+)\.histogram\.percentiles\.tsv$")


def percentiles(path):
    """Percentile -> value, scaled back if the exporter chose a unit such as "(K)"."""
    header, *rows = path.read_text().splitlines()
    unit = re.search(r"\((K|M|G)\)", header)
    factor = SCALE[unit.group(1)] if unit else 1
    return {int(p): float(v) * factor for p, v in (row.split("\t") for row in rows)}


def load(directories):
    results = {}
    for directory in directories:
        found = False
        for path in sorted(directory.glob("*.tsv")):
            match = PATTERN.search(path.name)
            if match and match.group(4) in METRICS:
                found = True
                key = (f"{match.group(1)} {match.group(2)}", int(match.group(3)))
                metric = METRICS[match.group(4)]
                new = percentiles(path)
                old = results.setdefault(key, {}).get(metric)
                results[key][metric] = {p: min(v, old[p]) for p, v in new.items()} if old else new
        if not found:
            raise SystemExit(f"no benchmark results in {directory}")
    return results


def table(results, percentile):
    misses = []
    print("| workload | " + " | ".join(f"N={n:,}" for n in SIZES) + " | 1M / 1k | heap B per live alloc, N=1M |")
    print("| --- |" + " ---: |" * (len(SIZES) + 2))
    for workload in sorted({key[0] for key in results}):
        per_op = {}
        for n in SIZES:
            ps = results.get((workload, n), {}).get("ps")
            per_op[n] = ps[percentile] / 1000 if ps else None
        cells = [f"{per_op[n]:.1f} ns" if per_op[n] is not None else "—" for n in SIZES]
        small, large = per_op[1_000], per_op[1_000_000]
        ratio = large / small if small and large else None
        heap = results.get((workload, 1_000_000), {}).get("heap")
        heap = heap[percentile] if heap else None
        ratio_cell = f"{ratio:.2f}x" if ratio is not None else "—"
        heap_cell = f"{heap:.0f}" if heap is not None else "—"
        print(f"| {workload} | " + " | ".join(cells) + f" | {ratio_cell} | {heap_cell} |")
        limit = 20 if workload.startswith("W4") else 1000
        for n in SIZES:
            if per_op[n] is not None and per_op[n] >= limit:
                misses.append(f"{workload} N={n}: {per_op[n]:.1f} ns/op (target < {limit} ns)")
        if ratio is not None and ratio > 3:
            misses.append(f"{workload}: per-op time at N=1M is {ratio:.2f}x N=1k (target <= 3x)")
        if heap is not None and heap > 64:
            misses.append(f"{workload}: {heap:.0f} B heap per live allocation at N=1M (target <= 64)")
    return misses


FLOOR_PHASES = [
    "W1 firstMatch", "W2 firstMatch", "W3 firstMatch",
    "W1 lastMatch", "W2 lastMatch", "W3 lastMatch",
    "I1 allocateID", "I2 freeID", "I3 reallocate",
]
FLOOR_SIZES = [100_000, 1_000_000]
RUST_VMM_ALLOCATE_ID_NS = 4.3  # issue 11: rust-vmm 0.1.4 allocate_id, nothing freed, N=100k


def load_floor(directory):
    """(phase, n) -> (median ps, fastest ps) from one run of the C++ floor, or None."""
    path = directory / "floor.tsv"
    if not path.exists():
        return None
    floor = {}
    for line in path.read_text().splitlines():
        phase, n, median, fastest = line.split("\t")
        floor[(phase, int(n))] = (float(median), float(fastest))
    return floor


def floor_table(directories):
    """VMAllocator against the floor measured in the same runs: each column the lowest
    median over the runs, and the range of the ratios of the single runs."""
    runs = []
    for directory in directories:
        floor = load_floor(directory)
        if floor is not None:
            runs.append((load([directory]), floor))
    if not runs:
        return []
    misses = []
    print("\nAgainst the floor (median sample, ns per operation; each column the lowest over the"
          " runs; ratio = VMAllocator / floor within each run, the median of the runs' ratios"
          " and their range):\n")
    print("| phase | N | VMAllocator | floor | ratio (median of runs) | ratio in single runs |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for phase in FLOOR_PHASES:
        for n in FLOOR_SIZES:
            ours, theirs, single = [], [], []
            for results, floor in runs:
                ps = results.get((phase, n), {}).get("ps")
                if ps is None or (phase, n) not in floor:
                    continue
                ours.append(ps[50] / 1000)
                theirs.append(floor[(phase, n)][0] / 1000)
                single.append(ours[-1] / theirs[-1])
            if not ours:
                continue
            ratio = sorted(single)[(len(single) - 1) // 2] if len(single) % 2 else \
                (sorted(single)[len(single) // 2 - 1] + sorted(single)[len(single) // 2]) / 2
            print(f"| {phase} | {n:,} | {min(ours):.1f} | {min(theirs):.1f} | {ratio:.2f}x"
                  f" | {min(single):.2f}x-{max(single):.2f}x |")
            if phase.startswith(("W", "I1")) and ratio > 1.5:
                misses.append(f"{phase} N={n:,}: {ratio:.2f}x the floor (target <= 1.5x)")
            if phase == "I1 allocateID" and min(ours) > RUST_VMM_ALLOCATE_ID_NS:
                misses.append(f"{phase} N={n:,}: {min(ours):.1f} ns (rust-vmm: {RUST_VMM_ALLOCATE_ID_NS} ns)")
    called = [floor.get(("I1 allocateID called", n)) for _, floor in runs for n in FLOOR_SIZES]
    called = [value[0] / 1000 for value in called if value]
    if called:
        print(f"\n(The ID floor's allocate through an out-of-line call: {min(called):.1f} ns.)")
    return misses


directories = [pathlib.Path(arg) for arg in sys.argv[1:]] or [pathlib.Path(".build/results")]
results = load(directories)
if len(directories) > 1:
    print(f"Lowest of {len(directories)} runs.\n")
print("Median sample (p50):\n")
misses = table(results, 50)
print("\nFastest sample (p0):\n")
fastest_misses = table(results, 0)
print("\nTargets missed by the median:" if misses else "\nThe median meets every target.")
for miss in misses:
    print(f"- {miss}")
print("Targets missed even by the fastest sample:" if fastest_misses else "The fastest sample meets every target.")
for miss in fastest_misses:
    print(f"- {miss}")
floor_misses = floor_table(directories)
if floor_misses:
    print("\nIssue 11 targets missed:")
    for miss in floor_misses:
        print(f"- {miss}")
elif any((directory / "floor.tsv").exists() for directory in directories):
    print("\nEvery issue 11 target is met.")
