#!/usr/bin/env bash
# Builds the VMAllocator libFuzzer target into .build-fuzz/ and runs it from the committed
# seed corpus in Fuzz/corpus/. Exits non-zero on any crash, discrepancy or build failure.
#
#   scripts/fuzz.sh [SECONDS]     (default 60)
#
# New inputs found during the run go to .build-fuzz/corpus/ (never into Fuzz/corpus/);
# a crashing input is written to .build-fuzz/artifacts/ and its path printed.
set -euo pipefail

seconds="${1:-60}"
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -eq 0 ]; then
    echo "usage: scripts/fuzz.sh [SECONDS]  (a positive whole number, default 60)" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out=".build-fuzz"
binary="$out/vmallocator-fuzzer"
mkdir -p "$out/corpus" "$out/artifacts"

# The fuzz sources and the reference models shared with the property tests
# (Tests/AllocatorModels, which import nothing) join the library's module, so the internal
# checkInvariants() is visible; VMALLOCATOR_CHECKS makes every mutation check the
# invariants too, as in the debug builds of the tests.
# Linker chatter about ASan's local symbols is dropped; compiler warnings are errors.
echo "fuzz: building $binary"
build_log="$out/build.log"
if ! swiftc -sanitize=fuzzer,address -parse-as-library -O -wmo -swift-version 6 \
    -warnings-as-errors -module-name VMAllocator -D VMALLOCATOR_CHECKS \
    Sources/VMAllocator/*.swift Tests/AllocatorModels/*.swift Fuzz/*.swift \
    -o "$binary" >"$build_log" 2>&1; then
    grep -v "Cannot export local symbol" "$build_log" >&2 || true
    echo "fuzz: build failed" >&2
    exit 1
fi
grep -v "Cannot export local symbol" "$build_log" || true

echo "fuzz: running for ${seconds}s from Fuzz/corpus ($(ls Fuzz/corpus | wc -l) seeds)"
log="$out/fuzz.log"
status=0
# Swift's own crash backtracer trips ASan after a fatalError; libFuzzer reports the crash.
SWIFT_BACKTRACE=enable=no "$binary" "$out/corpus" Fuzz/corpus \
    -max_total_time="$seconds" -max_len=4096 -timeout=20 -rss_limit_mb=4096 \
    -print_final_stats=1 -artifact_prefix="$out/artifacts/" >"$log" 2>&1 || status=$?
if [ "$status" -ne 0 ]; then
    # The discrepancy message comes before a long sanitizer report: show both ends.
    grep -E "Fatal error|ERROR: (AddressSanitizer|libFuzzer|LeakSanitizer)|SUMMARY:|Test unit written" "$log" >&2 || true
    tail -n 15 "$log" >&2
    echo "fuzz: FAILED (exit $status); full log in $log, crashing input in $out/artifacts/" >&2
    exit 1
fi
grep -E "^(Done|stat::)" "$log" || tail -n 10 "$log"
echo "fuzz: no crash in ${seconds}s"
