#!/usr/bin/env bash
# Builds the snapshot.json libFuzzer target (Fuzz/SnapshotFuzz, a package of its own) into
# .build-fuzz/snapshot/ and runs it from the committed seeds in Fuzz/SnapshotFuzz/corpus/.
# Exits non-zero on any crash, discrepancy or build failure.
#
#   scripts/fuzz-snapshot.sh [SECONDS]     (default 30)
#
# New inputs found during the run go to .build-fuzz/snapshot-corpus/ (never into the
# committed seeds); a crashing input is written to .build-fuzz/snapshot-artifacts/ and its
# path printed.
set -euo pipefail

seconds="${1:-30}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: scripts/fuzz-snapshot.sh [SECONDS]  (a positive whole number, default 30)" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out=".build-fuzz"
scratch="$out/snapshot"
corpus="$out/snapshot-corpus"
artifacts="$out/snapshot-artifacts"
seeds="Fuzz/SnapshotFuzz/corpus"
mkdir -p "$corpus" "$artifacts"

# SwiftPM's --sanitize=fuzzer links libFuzzer's main (and so leaves out the executable's
# entry point); the Swift code itself needs "fuzzer,address" in one flag, since of several
# -sanitize flags the compiler keeps only the last. A debug build: compiling NIO and
# swift-crypto optimized would take longer than the run. Linker chatter about ASan's local
# symbols is dropped; a warning in the fuzz target's own source fails the build.
echo "fuzz-snapshot: building $scratch"
build_log="$out/snapshot-build.log"
if ! swift build --package-path Fuzz/SnapshotFuzz --scratch-path "$scratch" --product SnapshotFuzz \
    --sanitize=fuzzer -Xswiftc -sanitize=fuzzer,address >"$build_log" 2>&1; then
    grep -v "Cannot export local symbol" "$build_log" | tail -n 40 >&2 || true
    echo "fuzz-snapshot: build failed; full log in $build_log" >&2
    exit 1
fi
if grep -E "Sources/SnapshotFuzz/.*: warning:" "$build_log" >&2; then
    echo "fuzz-snapshot: compiler warnings in the fuzz target" >&2
    exit 1
fi
binary="$(swift build --package-path Fuzz/SnapshotFuzz --scratch-path "$scratch" --sanitize=fuzzer --show-bin-path)/SnapshotFuzz"

echo "fuzz-snapshot: running for ${seconds}s from $seeds ($(ls "$seeds" | wc -l) seeds)"
log="$out/snapshot-fuzz.log"
status=0
# Swift's own crash backtracer trips ASan after a fatalError; libFuzzer reports the crash.
# -max_len is above the largest seed (libFuzzer would cut longer seeds short).
SWIFT_BACKTRACE=enable=no "$binary" "$corpus" "$seeds" \
    -max_total_time="$seconds" -max_len=16384 -timeout=20 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    grep -E "Fatal error|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|SUMMARY:|Test unit written" "$log" >&2 || true
    tail -n 15 "$log" >&2
    echo "fuzz-snapshot: FAILED (exit $status); full log in $log, crashing input in $artifacts/" >&2
    exit 1
fi
grep -E "^(Done|stat::)" "$log" || tail -n 10 "$log"
echo "fuzz-snapshot: no crash in ${seconds}s"
