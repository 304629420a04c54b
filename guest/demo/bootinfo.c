#include "bootinfo.h"

#include "../abi.h"
#include "console.h"

static __attribute__((noreturn)) void header_fail(const char *what, uint64_t value) {
    fail_begin("bootinfo-header");
    put_str(what);
    put_str(" is ");
    put_hex(value);
    fail_exit(EXIT_BOOTINFO_HEADER);
}

const struct bootinfo_header *bootinfo_validate(uint64_t address) {
    const struct bootinfo_header *header = (const struct bootinfo_header *)(uintptr_t)address;
    if (header->magic != BOOTINFO_MAGIC) header_fail("magic", header->magic);
    if (header->version != BOOTINFO_VERSION) header_fail("version", header->version);
    if (header->header_size != BOOTINFO_HEADER_SIZE) header_fail("header size", header->header_size);
    if (header->entry_size != BOOTINFO_ENTRY_SIZE) header_fail("entry size", header->entry_size);
    uint32_t expected_total = BOOTINFO_HEADER_SIZE + (uint32_t)header->entry_count * BOOTINFO_ENTRY_SIZE;
    if (header->total_size != expected_total) header_fail("total size", header->total_size);
    /* The table must fit its 8 KiB page pair at 0x2000. */
    if (header->total_size > 0x2000) header_fail("total size", header->total_size);
    return header;
}

const struct bootinfo_entry *bootinfo_entry(const struct bootinfo_header *header,
                                            uint16_t index) {
    const char *entries = (const char *)header + header->header_size;
    return (const struct bootinfo_entry *)(entries + (uint32_t)index * header->entry_size);
}

const struct bootinfo_entry *bootinfo_require(const struct bootinfo_header *header,
                                              uint16_t kind) {
    for (uint16_t i = 0; i < header->entry_count; i++) {
        const struct bootinfo_entry *entry = bootinfo_entry(header, i);
        if (entry->kind == kind) return entry;
    }
    fail_begin("bootinfo-missing");
    put_str("no ");
    put_resource_name(kind, 0);
    put_str(" entry");
    fail_exit(EXIT_BOOTINFO_MISSING);
}

static void put_optional(uint32_t value) {
    if (value == 0xFFFFFFFFu) {
        put_str("none");
    } else {
        put_dec(value);
    }
}

/* The resource kinds the demo lists. CPU entries are reported by the SMP step instead, and
 * entries of kinds this guest does not know are skipped, as the ABI asks, so with one CPU
 * the listing is the same as from a minivmm without CPU entries. */
static int listed_kind(uint16_t kind) {
    return kind >= KIND_RAM && kind <= KIND_DMA_CONSOLE;
}

void bootinfo_print(const struct bootinfo_header *header) {
    uint16_t listed = 0;
    for (uint16_t i = 0; i < header->entry_count; i++) {
        if (listed_kind(bootinfo_entry(header, i)->kind)) listed++;
    }
    put_str("bootinfo: version ");
    put_dec(header->version);
    put_str(", ");
    put_dec(listed);
    put_str(" entries\n");
    for (uint16_t i = 0; i < header->entry_count; i++) {
        const struct bootinfo_entry *entry = bootinfo_entry(header, i);
        if (!listed_kind(entry->kind)) continue;
        put_resource_name(entry->kind, entry->instance);
        put_str(": base ");
        put_hex(entry->base);
        put_str(" size ");
        put_hex(entry->size);
        put_str(" gsi ");
        put_optional(entry->gsi);
        put_str(" slot ");
        put_optional(entry->slot);
        put_char('\n');
    }
}

uint64_t bootinfo_ram_top(const struct bootinfo_header *header) {
    uint64_t top = 0;
    for (uint16_t i = 0; i < header->entry_count; i++) {
        const struct bootinfo_entry *entry = bootinfo_entry(header, i);
        if (entry->kind == KIND_RAM && entry->base + entry->size > top) {
            top = entry->base + entry->size;
        }
    }
    return top;
}
