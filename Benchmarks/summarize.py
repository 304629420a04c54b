#!/usr/bin/env python3
"""Turns `swift package benchmark --no-progress` text output (stdin) into the summary
table of docs/performance.md: p50 time per operation and heap per live allocation for
every workload and N, plus the ratio of per-op time at N=1M to N=1k."""
import re
import sys

SCALE = {"": 1, "K": 1e3, "M": 1e6, "G": 1e9}
benchmarks = {}
current = None
for line in sys.stdin:
    line = line.rstrip("\n")
    header = re.match(r"^(W[1-4] \S+ N=(\d+))$", line)
    if header:
        current = benchmarks.setdefault(header.group(1), {})
        continue
    row = re.match(r"^│ (Time per op \(ps\)|Heap per live alloc \(B\))\s*(?:\((\w)\))?\s*│(.*)$", line)
    if current is not None and row:
        cells = [c.strip() for c in row.group(3).split("│")]
        p50 = float(cells[2]) * SCALE[row.group(2) or ""]
        current["ns" if row.group(1).startswith("Time") else "heap"] = (
            p50 / 1000 if row.group(1).startswith("Time") else p50
        )

workloads = sorted({name.rsplit(" N=", 1)[0] for name in benchmarks})
sizes = [1_000, 10_000, 100_000, 1_000_000]
print("| workload | " + " | ".join(f"N={n:,}" for n in sizes) + " | 1M / 1k | heap B/live at 1M |")
print("| --- |" + " ---: |" * (len(sizes) + 2))
for workload in workloads:
    cells = []
    for n in sizes:
        result = benchmarks.get(f"{workload} N={n}", {})
        cells.append(f"{result['ns']:.1f} ns" if "ns" in result else "—")
    small = benchmarks.get(f"{workload} N=1000", {}).get("ns")
    large = benchmarks.get(f"{workload} N=1000000", {}).get("ns")
    ratio = f"{large / small:.2f}x" if small and large else "—"
    heap = benchmarks.get(f"{workload} N=1000000", {}).get("heap")
    print(f"| {workload} | " + " | ".join(cells) + f" | {ratio} | {heap:.0f} |" if heap is not None else " | — |")
