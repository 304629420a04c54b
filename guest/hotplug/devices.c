/* Using what the table gains, and letting go of what it is about to lose. Few instructions
 * each: CPL0 guest code may be emulated at a few microseconds per instruction. */
#include "hotplug.h"

#include "../abi.h"
#include "../demo/checks.h"
#include "../demo/console.h"
#include "../demo/io.h"

#define TIMER_DELAY_MICROSECONDS 1000
/* Generous: the host is shared and busy; a healthy timer fires after about 1 ms. */
#define TIMER_WATCHDOG_MS 5000

static uint64_t ioapic;

/* Room for "hello through dma-console #65535\n". */
static char message[40];

void devices_init(uint64_t ioapic_base) {
    ioapic = ioapic_base;
}

void ioapic_mask(uint32_t gsi) {
    mmio_write32(ioapic + IOAPIC_IOREGSEL, IOAPIC_REDIR_LOW(gsi));
    mmio_write32(ioapic + IOAPIC_IOWIN, IOAPIC_REDIR_MASKED);
}

/* "added KIND #N: base HEX" */
static void put_added(const struct bootinfo_entry *entry) {
    put_str("added ");
    put_resource_name(entry->kind, entry->instance);
    put_str(": base ");
    put_hex(entry->base);
}

/* "ok KIND #N: " */
static void put_ok(const struct bootinfo_entry *entry) {
    put_str("ok ");
    put_resource_name(entry->kind, entry->instance);
    put_str(": ");
}

static __attribute__((noreturn)) void entry_fail(const char *check, const struct bootinfo_entry *entry,
                                                 enum exit_status status, const char *what, uint64_t value) {
    fail_begin(check);
    put_resource_name(entry->kind, entry->instance);
    put_str(" ");
    put_str(what);
    put_str(" ");
    put_hex(value);
    fail_exit(status);
}

void use_timer(const struct bootinfo_entry *timer) {
    put_added(timer);
    put_str(" gsi ");
    put_dec(timer->gsi);
    put_char('\n');

    uint64_t base = timer->base;
    uint32_t magic = mmio_read32(base + TIMER_MAGIC);
    if (magic != TIMER_MAGIC_VALUE) entry_fail("timer-magic", timer, EXIT_TIMER_MAGIC, "magic", magic);
    if (timer->gsi >= IOAPIC_PINS) {
        entry_fail("timer-interrupt", timer, EXIT_TIMER_INTERRUPT, "has no IOAPIC pin: gsi", timer->gsi);
    }

    ioapic_route(timer->gsi, VECTOR_TIMER);
    uint32_t seen = interrupt_count(VECTOR_TIMER);
    mmio_write32(base + TIMER_DELAY_US, TIMER_DELAY_MICROSECONDS);
    if (!wait_for_vector(VECTOR_TIMER, seen, TIMER_WATCHDOG_MS)) {
        fail_begin("timer-interrupt");
        put_resource_name(timer->kind, timer->instance);
        put_str(" raised no interrupt on gsi ");
        put_dec(timer->gsi);
        put_str(" within 5 s");
        fail_exit(EXIT_TIMER_INTERRUPT);
    }
    uint32_t status = mmio_read32(base + TIMER_STATUS);
    if ((status & TIMER_STATUS_FIRED) == 0) {
        entry_fail("timer-status", timer, EXIT_TIMER_STATUS, "FIRED not set after the interrupt: status", status);
    }
    mmio_write32(base + TIMER_STATUS, TIMER_STATUS_FIRED);
    status = mmio_read32(base + TIMER_STATUS);
    if ((status & TIMER_STATUS_FIRED) != 0) {
        entry_fail("timer-status", timer, EXIT_TIMER_STATUS, "FIRED not cleared by writing 1: status", status);
    }
    ioapic_mask(timer->gsi);

    put_ok(timer);
    put_str("interrupt from gsi ");
    put_dec(timer->gsi);
    put_char('\n');
}

static uint32_t append(uint32_t length, const char *text) {
    while (*text != '\0' && length < sizeof(message)) message[length++] = *text++;
    return length;
}

/* "hello through dma-console #N\n" into `message`; returns its length. */
static uint32_t build_message(uint16_t instance) {
    uint32_t length = append(0, "hello through dma-console #");
    char digits[6];
    int count = 0;
    do {
        digits[count++] = (char)('0' + instance % 10);
        instance /= 10;
    } while (instance != 0);
    while (count > 0 && length < sizeof(message)) message[length++] = digits[--count];
    return append(length, "\n");
}

void use_dma_console(const struct bootinfo_entry *console) {
    put_added(console);
    put_str(" gsi ");
    put_dec(console->gsi);
    put_char('\n');

    uint64_t base = console->base;
    uint32_t magic = mmio_read32(base + DMA_MAGIC);
    if (magic != DMA_MAGIC_VALUE) entry_fail("dma-magic", console, EXIT_DMA_MAGIC, "magic", magic);

    uint32_t length = build_message(console->instance);
    uint32_t written = mmio_read32(base + DMA_WRITTEN);
    uint32_t status = dma_request(base, (uint64_t)(uintptr_t)message, length);
    if (status != DMA_STATUS_OK) entry_fail("dma-request", console, EXIT_DMA_REQUEST, "status", status);
    uint32_t now_written = mmio_read32(base + DMA_WRITTEN);
    if (now_written - written != length) {
        entry_fail("dma-request", console, EXIT_DMA_REQUEST, "WRITTEN advanced by", now_written - written);
    }

    put_ok(console);
    put_str("wrote ");
    put_dec(length);
    put_str(" bytes\n");
}

void use_ram(const struct bootinfo_entry *ram) {
    put_added(ram);
    put_str(" size ");
    put_hex(ram->size);
    put_str(" slot ");
    put_dec(ram->slot);
    put_char('\n');

    if (ram->size < 16) entry_fail("ram-pattern", ram, EXIT_RAM_PATTERN, "is too small: size", ram->size);
    uint64_t first = ram->base;
    uint64_t last = ram->base + ram->size - 8;
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

    put_ok(ram);
    put_str("pattern at ");
    put_hex(first);
    put_str(" and ");
    put_hex(last);
    put_char('\n');
}

void stop_using(const struct bootinfo_entry *entry) {
    /* A DMA console is only used synchronously (no completion interrupt), and RAM holds
     * nothing the guest keeps, so only a timer has something to stop. */
    if (entry->kind == KIND_TIMER) {
        mmio_write32(entry->base + TIMER_DELAY_US, 0);
        if (entry->gsi < IOAPIC_PINS) ioapic_mask(entry->gsi);
    }
}
