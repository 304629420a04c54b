/*
 * The minivmm demo guest: finds every resource minivmm handed it in the boot-information
 * table, prints them over COM1, starts the other CPUs if it has several (smp.c), then
 * exercises each device. Exit statuses: console.h.
 */
#include "../abi.h"
#include "bootinfo.h"
#include "checks.h"
#include "console.h"
#include "interrupts.h"
#include "smp.h"

int guest_main(uint64_t bootinfo_address);

static void for_each_kind(const struct bootinfo_header *header, uint16_t kind,
                          void (*check)(const struct bootinfo_entry *, const struct bootinfo_header *, uint8_t)) {
    uint8_t index = 0;
    for (uint16_t i = 0; i < header->entry_count; i++) {
        const struct bootinfo_entry *entry = bootinfo_entry(header, i);
        if (entry->kind == kind) check(entry, header, index++);
    }
}

static void run_timer(const struct bootinfo_entry *entry, const struct bootinfo_header *header, uint8_t index) {
    (void)header;
    check_timer(entry, index);
}

static void run_dma_console(const struct bootinfo_entry *entry, const struct bootinfo_header *header,
                            uint8_t index) {
    (void)index;
    check_dma_console(entry, header);
}

static void run_ram(const struct bootinfo_entry *entry, const struct bootinfo_header *header, uint8_t index) {
    (void)header;
    (void)index;
    check_ram(entry);
}

int guest_main(uint64_t bootinfo_address) {
    console_init();
    put_str("minivmm demo guest\n");
    const struct bootinfo_header *header = bootinfo_validate(bootinfo_address);
    bootinfo_print(header);

    bootinfo_require(header, KIND_RAM);
    const struct bootinfo_entry *lapic = bootinfo_require(header, KIND_LAPIC);
    const struct bootinfo_entry *ioapic = bootinfo_require(header, KIND_IOAPIC);
    interrupts_init(lapic->base, ioapic->base);
    smp_run(header);

    for_each_kind(header, KIND_DMA_CONSOLE, run_dma_console);
    for_each_kind(header, KIND_TIMER, run_timer);
    for_each_kind(header, KIND_RAM, run_ram);

    put_str("all checks passed\n");
    return EXIT_OK;
}
