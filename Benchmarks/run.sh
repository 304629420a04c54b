#!/usr/bin/env bash
# Runs the allocator benchmark suite RUNS times (default 3) in release mode, each time
# followed by the C++ floor program (floor/floor.cpp), and prints the summary of
# docs/performance.md (each figure the lowest over the runs) with the floor comparison.
#
#   Benchmarks/run.sh [RUNS]
set -euo pipefail

runs="${1:-3}"
if ! [[ "$runs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: Benchmarks/run.sh [RUNS]  (a positive whole number, default 3)" >&2
    exit 2
fi
cd "$(dirname "${BASH_SOURCE[0]}")"
rm -rf .build/results-*
# The C++ floor (issue 11): the same phases on std::map and a counter plus a free list,
# run right after the Swift suite in every run so both columns share the run's conditions.
mkdir -p .build
echo "benchmarks: building the C++ floor (.build/floor)" >&2
g++ -O2 -std=c++17 -Wall -Wextra -Werror -o .build/floor floor/floor.cpp
directories=()
for run in $(seq 1 "$runs"); do
    directory=".build/results-$run"
    mkdir -p "$directory"
    echo "benchmarks: run $run of $runs (log in .build/benchmark-run-$run.log)" >&2
    if ! swift package --allow-writing-to-directory "$directory" benchmark \
        --format histogramPercentiles --path "$directory" --no-progress \
        >".build/benchmark-run-$run.log" 2>&1; then
        tail -n 30 ".build/benchmark-run-$run.log" >&2
        echo "benchmarks: run $run failed" >&2
        exit 1
    fi
    # A workload that returns a wrong result fails its benchmark, which the tool only prints.
    if grep -q "failed with" ".build/benchmark-run-$run.log"; then
        grep "failed with" ".build/benchmark-run-$run.log" >&2
        echo "benchmarks: a workload returned a wrong result" >&2
        exit 1
    fi
    echo "benchmarks: run $run of $runs, C++ floor" >&2
    .build/floor >"$directory/floor.tsv"
    directories+=("$directory")
done
python3 summarize.py "${directories[@]}"
