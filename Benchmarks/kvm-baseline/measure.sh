#!/usr/bin/env bash
# Compares minivmm's cost per VM exit with the C baseline's (docs/performance.md, "minivmm").
#
#   measure.sh MINIVMM KVM_BASELINE [ROUNDS]
#
# Each round runs, for both monitors in alternating order, the 200,000-exit guest
# (guest/tests/portwrites.bin) and the guest that exits at once (guest/tests/exit42.bin),
# so load changes on a shared machine hit both alike. Per-exit cost is
#   (median time of portwrites - median time of exit42) / 200,000
# which removes process start, KVM set-up and teardown. All times are wall-clock.
set -euo pipefail

minivmm=${1:?usage: measure.sh MINIVMM KVM_BASELINE [ROUNDS]}
baseline=${2:?usage: measure.sh MINIVMM KVM_BASELINE [ROUNDS]}
rounds=${3:-15}
root=$(cd "$(dirname "$0")/../.." && pwd)
writes_guest=$root/guest/tests/portwrites.bin
exit_guest=$root/guest/tests/exit42.bin
exits=200000
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Runs "$@" once; appends its wall time in ns to $1 and its CPU time (user + system,
# 10 ms resolution) in ns to $1.cpu. The guest's exit status must be 0 or 42.
time_once() {
    local out=$1; shift
    local start end status=0
    start=$(date +%s%N)
    /usr/bin/time -f "%U %S" -o "$work/cpu" "$@" >/dev/null 2>&1 || status=$?
    end=$(date +%s%N)
    if [[ $status -ne 0 && $status -ne 42 ]]; then
        echo "measure.sh: '$*' exited $status" >&2
        exit 1
    fi
    echo $((end - start)) >>"$out"
    tail -n 1 "$work/cpu" | awk '{ printf "%.0f\n", ($1 + $2) * 1e9 }' >>"$out.cpu"
}

for ((round = 0; round < rounds; round++)); do
    if ((round % 2 == 0)); then order="c swift"; else order="swift c"; fi
    for who in $order; do
        if [[ $who == c ]]; then cmd=("$baseline"); else cmd=("$minivmm"); fi
        time_once "$work/$who-exit" "${cmd[@]}" "$exit_guest"
        time_once "$work/$who-writes" "${cmd[@]}" "$writes_guest"
    done
done

median() { sort -n "$1" | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

report() {
    local kind=$1 suffix=$2
    awk -v kind="$kind" -v n="$exits" -v r="$rounds" \
        -v ce="$(median "$work/c-exit$suffix")" -v cw="$(median "$work/c-writes$suffix")" \
        -v se="$(median "$work/swift-exit$suffix")" -v sw="$(median "$work/swift-writes$suffix")" 'BEGIN {
        cper = (cw - ce) / n; sper = (sw - se) / n
        printf "%s time, medians of %d rounds\n", kind, r
        printf "  %-11s %12s %16s %14s\n", "monitor", "exit42 (ms)", "portwrites (ms)", "per exit (us)"
        printf "  %-11s %12.1f %16.1f %14.2f\n", "C baseline", ce / 1e6, cw / 1e6, cper / 1e3
        printf "  %-11s %12.1f %16.1f %14.2f\n", "minivmm", se / 1e6, sw / 1e6, sper / 1e3
        printf "  minivmm / C per exit: %.3f (%+.1f%%)\n", sper / cper, (sper / cper - 1) * 100
    }'
    printf "  portwrites range (ms): C %s, minivmm %s\n" \
        "$(range "$work/c-writes$suffix")" "$(range "$work/swift-writes$suffix")"
}

range() { sort -n "$1" | awk 'NR == 1 { lo = $1 } { hi = $1 } END { printf "%.0f-%.0f", lo / 1e6, hi / 1e6 }'; }

report wall ""
report "CPU (user+system)" ".cpu"
