#!/usr/bin/env bash
# Builds every guest image under guest/ into flat binaries loaded at 0x100000:
#   guest/demo/*.{c,S}  -> guest/guest.bin        (the demo guest)
#   guest/demo/*.{c,S} but demo/main.c, plus guest/hotplug/*.c
#                       -> guest/hotplug.bin      (the hot-plug guest, ABI version 2)
#   guest/tests/NAME.S  -> guest/tests/NAME.bin   (one small test guest each)
# Output is deterministic (no timestamps, paths or build IDs reach a flat binary), so CI can
# rebuild and run `git diff --exit-code guest/` to catch a stale committed binary.
# Works from any directory; exits non-zero on any failure. Needs gcc and binutils.
set -euo pipefail
export LC_ALL=C  # fixed glob order, so the link order (and the bytes) never vary

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
guest="$root/guest"
CC="${CC:-gcc}"
OBJCOPY="${OBJCOPY:-objcopy}"
NM="${NM:-nm}"

for tool in "$CC" "$OBJCOPY" "$NM"; do
    command -v "$tool" >/dev/null || { echo "build-guest.sh: $tool not found (install gcc and binutils)" >&2; exit 1; }
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Relative source paths and a fixed prefix map keep the build directory out of every object.
cd "$guest"
common_flags=(
    -m64 -march=x86-64 -O2 -g0
    -ffreestanding -fno-builtin -nostdlib -nostdinc -isystem "$("$CC" -print-file-name=include)"
    -fno-pic -fno-pie -mcmodel=small -mno-red-zone -mgeneral-regs-only
    -fno-stack-protector -fcf-protection=none -fno-asynchronous-unwind-tables -fno-unwind-tables
    -fno-tree-loop-distribute-patterns -fno-ident
    -ffile-prefix-map="$guest"=. -ffile-prefix-map="$work"=.
    -Wall -Wextra -Werror -Wa,--fatal-warnings
)
link_flags=(
    -nostdlib -static -no-pie -Wl,--build-id=none -Wl,-T,linker.ld -Wl,--no-warn-rwx-segments
    -Wl,-z,noexecstack
)

# link NAME OUTPUT OBJECTS...: links, checks the entry is the first byte, writes OUTPUT
# only when its bytes change.
link() {
    local name="$1" output="$2"
    shift 2
    "$CC" "${common_flags[@]}" "${link_flags[@]}" -o "$work/$name.elf" "$@"
    local entry
    entry="$("$NM" "$work/$name.elf" | awk '$3 == "_start" { print $1 }')"
    if [[ "$entry" != "0000000000100000" ]]; then
        echo "build-guest.sh: $name: _start is at 0x${entry:-missing}, not 0x100000" >&2
        exit 1
    fi
    "$OBJCOPY" -O binary "$work/$name.elf" "$work/$name.bin"
    if [[ ! -s "$work/$name.bin" ]]; then
        echo "build-guest.sh: $name: empty image" >&2
        exit 1
    fi
    if ! cmp -s "$work/$name.bin" "$output"; then
        cp "$work/$name.bin" "$output"
    fi
    echo "built ${output#"$root"/} ($(wc -c <"$output") bytes)"
}

# The demo guest.
demo_objects=()
for source in demo/*.S demo/*.c; do
    object="$work/demo-$(basename "$source").o"
    "$CC" "${common_flags[@]}" -std=c11 -c "$source" -o "$object"
    demo_objects+=("$object")
done
link demo "$guest/guest.bin" "${demo_objects[@]}"

# The hot-plug guest: the demo's objects (same order) except its main.c, whose guest_main
# hotplug/*.c replaces.
hotplug_objects=()
for object in "${demo_objects[@]}"; do
    [[ "$object" == "$work/demo-main.c.o" ]] || hotplug_objects+=("$object")
done
for source in hotplug/*.c; do
    object="$work/hotplug-$(basename "$source").o"
    "$CC" "${common_flags[@]}" -std=c11 -c "$source" -o "$object"
    hotplug_objects+=("$object")
done
link hotplug "$guest/hotplug.bin" "${hotplug_objects[@]}"

# The test guests.
for source in tests/*.S; do
    name="$(basename "$source" .S)"
    object="$work/test-$name.o"
    "$CC" "${common_flags[@]}" -c "$source" -o "$object"
    link "$name" "$guest/tests/$name.bin" "$object"
done
