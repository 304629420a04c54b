#include "../abi.h"
#include "checks.h"
#include "console.h"
#include "io.h"

/* One past the image's last byte, page aligned (linker.ld). */
extern const char __image_end[];

#define TWO_MIB 0x200000ull

/* The first address of `ram` that holds none of the guest's own code, data, stack or
 * tables: everything below the image end is in use. Rounded up to 2 MiB when that still
 * leaves room, so the printed address does not move with the image's size. */
static uint64_t free_start(const struct bootinfo_entry *ram) {
    uint64_t image_end = (uint64_t)(uintptr_t)__image_end;
    uint64_t end = ram->base + ram->size;
    if (ram->base >= image_end) return ram->base;
    uint64_t rounded = (image_end + TWO_MIB - 1) & ~(TWO_MIB - 1);
    return rounded + 8 <= end - 8 ? rounded : image_end;
}

void check_ram(const struct bootinfo_entry *ram) {
    uint64_t first = free_start(ram);
    uint64_t last = ram->base + ram->size - 8;
    if (first > last) {
        fail_begin("ram-pattern");
        put_resource_name(ram->kind, ram->instance);
        put_str(" has no free bytes past the image at ");
        put_hex(first);
        fail_exit(EXIT_RAM_PATTERN);
    }
    ram_write64(first, ram_pattern(first));
    ram_write64(last, ram_pattern(last));
    uint64_t addresses[2] = {first, last};
    for (int i = 0; i < 2; i++) {
        uint64_t value = ram_read64(addresses[i]);
        if (value != ram_pattern(addresses[i])) {
            fail_begin("ram-pattern");
            put_resource_name(ram->kind, ram->instance);
            put_str(" read back ");
            put_hex(value);
            put_str(" at ");
            put_hex(addresses[i]);
            fail_exit(EXIT_RAM_PATTERN);
        }
    }
    put_str("ok ");
    put_resource_name(ram->kind, ram->instance);
    put_str(": pattern written and read back at ");
    put_hex(first);
    put_str(" and ");
    put_hex(last);
    put_char('\n');
}
