#!/usr/bin/env python3
"""Summarises a run of the allocator benchmarks for docs/performance.md.

Usage (from Benchmarks/):
    mkdir -p .build/results
    swift package --allow-writing-to-directory .build/results benchmark \\
        --format histogramPercentiles --path .build/results --no-progress
    python3 summarize.py .build/results

Prints, per workload, the median (p50 over the samples) time per operation at each N,
the ratio of N=1M to N=1k, and the heap held per live allocation at N=1M, with a verdict
against issue 2's targets."""
import pathlib
import re
import sys

SIZES = [1_000, 10_000, 100_000, 1_000_000]
METRICS = {"Time_per_op_(ps)": "ps", "Heap_per_live_alloc_(B)": "heap"}


def p50(path):
    for line in path.read_text().splitlines()[1:]:
        percentile, value = line.split("\t")
        if percentile == "50":
            return float(value)
    raise SystemExit(f"no p50 in {path}")


results = {}
pattern = re.compile(r"\.AllocatorBenchmarks\.(W\d)_(\w+)_N=(\d+)\.(.+)\.histogram\.percentiles\.tsv$")
directory = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".build/results")
for path in sorted(directory.glob("*.tsv")):
    match = pattern.search(path.name)
    if match and match.group(4) in METRICS:
        key = (f"{match.group(1)} {match.group(2)}", int(match.group(3)))
        results.setdefault(key, {})[METRICS[match.group(4)]] = p50(path)
if not results:
    raise SystemExit(f"no benchmark results in {directory}")

print("| workload | " + " | ".join(f"N={n:,}" for n in SIZES) + " | 1M / 1k | heap B per live alloc, N=1M |")
print("| --- |" + " ---: |" * (len(SIZES) + 2))
misses = []
for workload in sorted({key[0] for key in results}):
    per_op = {n: results.get((workload, n), {}).get("ps") for n in SIZES}
    cells = [f"{per_op[n] / 1000:.1f} ns" if per_op[n] is not None else "—" for n in SIZES]
    small, large = per_op[1_000], per_op[1_000_000]
    ratio = large / small if small and large else None
    heap = results.get((workload, 1_000_000), {}).get("heap")
    print(f"| {workload} | " + " | ".join(cells)
          + f" | {ratio:.2f}x |" if ratio is not None else " | — |", end="")
    print(f" {heap:.0f} |" if heap is not None else " — |")
    limit_ns = 20 if workload.startswith("W4") else 1000
    for n in SIZES:
        if per_op[n] is not None and per_op[n] / 1000 >= limit_ns:
            misses.append(f"{workload} N={n}: {per_op[n] / 1000:.1f} ns/op (target < {limit_ns} ns)")
    if ratio is not None and ratio > 3:
        misses.append(f"{workload}: N=1M is {ratio:.2f}x N=1k per op (target <= 3x)")
    if heap is not None and heap > 64:
        misses.append(f"{workload}: {heap:.0f} B heap per live allocation at N=1M (target <= 64)")
print()
print("Targets missed:" if misses else "All targets met.")
for miss in misses:
    print(f"- {miss}")
