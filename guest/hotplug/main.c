/*
 * The minivmm hot-plug guest (ABI version 2): turns on the hot-plug controller's
 * notifications, then sleeps until the table changes or COM1 has input. At every change it
 * takes a consistent copy of the table (GENERATION read before and after), compares it with
 * the previous copy and reports each difference: it exercises every timer, DMA console and
 * RAM region that appeared, ejects each one marked REMOVING, and notes each one that went.
 * A `q` on COM1 ends it with status 0. Output and exit statuses: guest/README.md.
 */
#include "hotplug.h"

#include "../abi.h"
#include "../demo/bootinfo.h"
#include "../demo/console.h"
#include "../demo/interrupts.h"
#include "../demo/io.h"

int guest_main(uint64_t bootinfo_address);

/* The table holds at most 255 entries (8 KiB); bootinfo_validate enforces it. */
#define MAX_ENTRIES 255

struct view {
    uint32_t generation;
    uint16_t count;
    struct bootinfo_entry entries[MAX_ENTRIES];
};

/* Two copies, the last one reported and the one being taken; static, as the stack is only
 * 64 KiB. */
static struct view views[2];
static uint64_t table;
static uint64_t controller;

/* Keeps the compiler from moving table reads across the GENERATION reads. */
static inline void compiler_barrier(void) {
    __asm__ volatile("" : : : "memory");
}

/* A consistent copy of the table: GENERATION, the entries, GENERATION again, retried while
 * it moved (minivmm rewrites the table only while every vCPU is out of KVM_RUN, so a copy
 * between two equal GENERATION reads is one version of it). */
static void take_view(struct view *view) {
    for (;;) {
        uint32_t before = mmio_read32(controller + HOTPLUG_GENERATION);
        compiler_barrier();
        const struct bootinfo_header *header = bootinfo_validate(table);
        uint16_t count = header->entry_count;
        const volatile struct bootinfo_entry *source = bootinfo_entry(header, 0);
        for (uint16_t i = 0; i < count; i++) {
            struct bootinfo_entry *entry = &view->entries[i];
            entry->kind = source[i].kind;
            entry->instance = source[i].instance;
            entry->gsi = source[i].gsi;
            entry->base = source[i].base;
            entry->size = source[i].size;
            entry->slot = source[i].slot;
            entry->flags = source[i].flags;
        }
        compiler_barrier();
        uint32_t after = mmio_read32(controller + HOTPLUG_GENERATION);
        if (after == before) {
            view->generation = after;
            view->count = count;
            return;
        }
    }
}

/* The kinds this guest uses, announces and ejects. The exit port, COM1, the IOAPIC, the
 * local APIC, CPUs, the controller itself and kinds it does not know are left alone. */
static int watched_kind(uint16_t kind) {
    return kind == KIND_RAM || kind == KIND_TIMER || kind == KIND_DMA_CONSOLE;
}

static int removing(const struct bootinfo_entry *entry) {
    return (entry->flags & BE_FLAG_REMOVING) != 0;
}

/* The entry of `view` with `entry`'s kind and instance (the identity of an entry), or 0.
 * The search starts at *hint and wraps around; *hint moves past the match, so walking two
 * views in table order costs about one comparison per entry. */
static const struct bootinfo_entry *find(const struct view *view, const struct bootinfo_entry *entry,
                                         uint16_t *hint) {
    uint16_t count = view->count;
    uint16_t index = *hint < count ? *hint : 0;
    for (uint16_t step = 0; step < count; step++) {
        const struct bootinfo_entry *candidate = &view->entries[index];
        if (candidate->kind == entry->kind && candidate->instance == entry->instance) {
            *hint = (uint16_t)(index + 1);
            return candidate;
        }
        index = (uint16_t)(index + 1 == count ? 0 : index + 1);
    }
    return 0;
}

/* Whether `after` is a different resource that took the kind and instance of `before`
 * between two copies (an instance or slot ID reused after a removal): other resources, or
 * the REMOVING flag gone again. Reported as a removal and an addition. */
static int replaced(const struct bootinfo_entry *before, const struct bootinfo_entry *after) {
    return before->gsi != after->gsi || before->base != after->base || before->size != after->size ||
           before->slot != after->slot || (removing(before) && !removing(after));
}

static void use(const struct bootinfo_entry *entry) {
    switch (entry->kind) {
    case KIND_TIMER: use_timer(entry); break;
    case KIND_DMA_CONSOLE: use_dma_console(entry); break;
    case KIND_RAM: use_ram(entry); break;
    default: break;
    }
}

/* "removing KIND #N", stop using it, EJECT it, "eject KIND #N". */
static void eject(const struct bootinfo_entry *entry) {
    put_str("removing ");
    put_resource_name(entry->kind, entry->instance);
    put_char('\n');
    stop_using(entry);
    mmio_write32(controller + HOTPLUG_EJECT, (uint32_t)entry->kind << 16 | entry->instance);
    uint32_t status = mmio_read32(controller + HOTPLUG_STATUS);
    if ((status & HOTPLUG_STATUS_EJECT_ERROR) != 0) {
        fail_begin("hotplug");
        put_str("eject of ");
        put_resource_name(entry->kind, entry->instance);
        put_str(" set EJECT_ERROR: status ");
        put_hex(status);
        fail_exit(EXIT_HOTPLUG);
    }
    put_str("eject ");
    put_resource_name(entry->kind, entry->instance);
    put_char('\n');
}

/* Reports every difference from `before` to `after`: first the watched entries gone from
 * `before` (table order of `before`), then, in table order of `after`, each new watched
 * entry (used, unless `after` is the initial copy: boot entries are not announced) and each
 * one whose REMOVING flag is newly set (or set when first seen), which is ejected.
 * Returns whether it printed anything. */
static int report(const struct view *before, const struct view *after, int initial) {
    int printed = 0;
    uint16_t hint = 0;
    for (uint16_t i = 0; i < before->count; i++) {
        const struct bootinfo_entry *old = &before->entries[i];
        if (!watched_kind(old->kind)) continue;
        const struct bootinfo_entry *now = find(after, old, &hint);
        if (now != 0 && !replaced(old, now)) continue;
        put_str("removed ");
        put_resource_name(old->kind, old->instance);
        put_char('\n');
        printed = 1;
    }
    hint = 0;
    for (uint16_t i = 0; i < after->count; i++) {
        const struct bootinfo_entry *entry = &after->entries[i];
        if (!watched_kind(entry->kind)) continue;
        const struct bootinfo_entry *old = find(before, entry, &hint);
        if (old != 0 && replaced(old, entry)) old = 0;
        if (old == 0 && !initial) {
            use(entry);
            printed = 1;
        }
        if (removing(entry) && (old == 0 || !removing(old))) {
            eject(entry);
            printed = 1;
        }
    }
    return printed;
}

static void put_generation_done(uint32_t generation) {
    put_str("hotplug: generation ");
    put_dec(generation);
    put_str(" done\n");
}

static const struct bootinfo_entry *require_controller(const struct bootinfo_header *header) {
    for (uint16_t i = 0; i < header->entry_count; i++) {
        const struct bootinfo_entry *entry = bootinfo_entry(header, i);
        if (entry->kind == KIND_HOTPLUG_CONTROLLER) return entry;
    }
    fail_begin("bootinfo-missing");
    put_str("no hotplug #0 entry");
    fail_exit(EXIT_BOOTINFO_MISSING);
}

static uint32_t com1_gsi(const struct bootinfo_header *header) {
    for (uint16_t i = 0; i < header->entry_count; i++) {
        const struct bootinfo_entry *entry = bootinfo_entry(header, i);
        if (entry->kind == KIND_UART && entry->base == COM1_BASE && entry->gsi < IOAPIC_PINS) {
            return entry->gsi;
        }
    }
    return COM1_GSI;
}

static __attribute__((noreturn)) void controller_fail(const char *what, uint64_t value) {
    fail_begin("hotplug");
    put_str("controller ");
    put_str(what);
    put_str(" ");
    put_hex(value);
    fail_exit(EXIT_HOTPLUG);
}

int guest_main(uint64_t bootinfo_address) {
    console_init();
    put_str("minivmm hotplug guest\n");
    table = bootinfo_address;
    const struct bootinfo_header *header = bootinfo_validate(table);
    bootinfo_require(header, KIND_RAM);
    const struct bootinfo_entry *lapic = bootinfo_require(header, KIND_LAPIC);
    const struct bootinfo_entry *ioapic = bootinfo_require(header, KIND_IOAPIC);
    const struct bootinfo_entry *hotplug = require_controller(header);
    controller = hotplug->base;
    uint32_t magic = mmio_read32(controller + HOTPLUG_MAGIC);
    if (magic != HOTPLUG_MAGIC_VALUE) controller_fail("magic is", magic);
    if (hotplug->gsi >= IOAPIC_PINS) controller_fail("has no IOAPIC pin: gsi", hotplug->gsi);

    interrupts_init(lapic->base, ioapic->base);
    devices_init(ioapic->base);
    ioapic_route(hotplug->gsi, VECTOR_HOTPLUG);
    ioapic_route(com1_gsi(header), VECTOR_COM1);
    outb(COM1_BASE + UART_IER, 1); /* received-data interrupt: input wakes the halt */

    /* Notifications first, then the initial copy: a change after the copy is announced.
     * CHANGED from before the copy is covered by it, so it is cleared first. */
    mmio_write32(controller + HOTPLUG_CTRL, HOTPLUG_CTRL_NOTIFY);
    mmio_write32(controller + HOTPLUG_STATUS, HOTPLUG_STATUS_CHANGED);
    struct view *current = &views[0];
    struct view *next = &views[1];
    take_view(current);
    put_str("hotplug: ready, generation ");
    put_dec(current->generation);
    put_char('\n');
    /* A removal requested between NOTIFY and the copy still waits for its EJECT. */
    next->count = 0;
    if (report(next, current, 1)) put_generation_done(current->generation);

    /* Interrupts stay off except across the halt: `sti; hlt` is atomic (the interrupt
     * shadow of sti), so an interrupt raised after the checks still ends the halt. */
    for (;;) {
        if ((inb(COM1_BASE + UART_LSR) & UART_LSR_DR) != 0) {
            if (inb(COM1_BASE + UART_RBR) == 'q') {
                put_str("bye\n");
                return EXIT_OK;
            }
            continue;
        }
        if ((mmio_read32(controller + HOTPLUG_STATUS) & HOTPLUG_STATUS_CHANGED) != 0) {
            /* Cleared before the copy, so a change during the copy sets it again. */
            mmio_write32(controller + HOTPLUG_STATUS, HOTPLUG_STATUS_CHANGED);
            take_view(next);
            /* The same generation is the same table (a change the last copy already had). */
            if (next->generation != current->generation) {
                report(current, next, 0);
                put_generation_done(next->generation);
                struct view *reported = current;
                current = next;
                next = reported;
            }
            continue;
        }
        __asm__ volatile("sti; hlt; cli" : : : "memory");
    }
}
