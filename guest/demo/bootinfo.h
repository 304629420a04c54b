/* The boot-information table minivmm places at 0x2000 (docs/guest-abi.md). */
#ifndef DEMO_BOOTINFO_H
#define DEMO_BOOTINFO_H

#include <stdint.h>

struct bootinfo_header {
    uint32_t magic;
    uint16_t version;
    uint16_t header_size;
    uint16_t entry_count;
    uint16_t entry_size;
    uint32_t total_size;
};

struct bootinfo_entry {
    uint16_t kind;
    uint16_t instance;
    uint32_t gsi;
    uint64_t base;
    uint64_t size;
    uint32_t slot;
    uint32_t flags; /* ABI version 2: BE_FLAG_REMOVING; 0 from a version-1 minivmm */
};

_Static_assert(sizeof(struct bootinfo_header) == 16, "header layout");
_Static_assert(sizeof(struct bootinfo_entry) == 32, "entry layout");

/* Checks the header (exit 1 on failure) and prints every entry. */
const struct bootinfo_header *bootinfo_validate(uint64_t address);
const struct bootinfo_entry *bootinfo_entry(const struct bootinfo_header *header,
                                            uint16_t index);
/* The first entry of `kind`, or exits with status 2 naming it. */
const struct bootinfo_entry *bootinfo_require(const struct bootinfo_header *header,
                                              uint16_t kind);
/* Prints the number of resource entries (kinds 1-7) and one line per such entry; CPU
 * entries and unknown kinds are not listed. */
void bootinfo_print(const struct bootinfo_header *header);
/* One past the highest RAM byte of any RAM entry. */
uint64_t bootinfo_ram_top(const struct bootinfo_header *header);

#endif
