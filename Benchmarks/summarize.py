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
PATTERN = re.compile(r"\.AllocatorBenchmarks\.(W\d)_(\w+)_N=(\d+)\.(.+)\.histogram\.percentiles\.tsv$")


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
