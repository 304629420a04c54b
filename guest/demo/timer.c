#include "../abi.h"
#include "checks.h"
#include "console.h"
#include "interrupts.h"
#include "io.h"

#define TIMER_DELAY_MICROSECONDS 1000
/* Generous: the host is shared and busy; a healthy timer fires after about 1 ms. */
#define TIMER_WATCHDOG_MS 5000

static __attribute__((noreturn)) void timer_fail(const char *check, const struct bootinfo_entry *timer,
                                                 enum exit_status status, const char *what, uint64_t value) {
    fail_begin(check);
    put_resource_name(timer->kind, timer->instance);
    put_str(" ");
    put_str(what);
    put_str(" ");
    put_hex(value);
    fail_exit(status);
}

void check_timer(const struct bootinfo_entry *timer, uint8_t index) {
    uint64_t base = timer->base;
    uint32_t magic = mmio_read32(base + TIMER_MAGIC);
    if (magic != TIMER_MAGIC_VALUE) timer_fail("timer-magic", timer, EXIT_TIMER_MAGIC, "magic", magic);

    uint8_t vector = (uint8_t)(VECTOR_DEVICE_BASE + index);
    ioapic_route(timer->gsi, vector);
    uint32_t seen = interrupt_count(vector);
    mmio_write32(base + TIMER_DELAY_US, TIMER_DELAY_MICROSECONDS);
    if (!wait_for_vector(vector, seen, TIMER_WATCHDOG_MS)) {
        fail_begin("timer-interrupt");
        put_resource_name(timer->kind, timer->instance);
        put_str(" raised no interrupt on gsi ");
        put_dec(timer->gsi);
        put_str(" within 5 s");
        fail_exit(EXIT_TIMER_INTERRUPT);
    }

    uint32_t status = mmio_read32(base + TIMER_STATUS);
    if ((status & TIMER_STATUS_FIRED) == 0) {
        timer_fail("timer-status", timer, EXIT_TIMER_STATUS, "FIRED not set after the interrupt: status", status);
    }
    mmio_write32(base + TIMER_STATUS, TIMER_STATUS_FIRED);
    status = mmio_read32(base + TIMER_STATUS);
    if ((status & TIMER_STATUS_FIRED) != 0) {
        timer_fail("timer-status", timer, EXIT_TIMER_STATUS, "FIRED not cleared by writing 1: status", status);
    }
    uint32_t count = mmio_read32(base + TIMER_COUNT);
    if (count != 1) timer_fail("timer-status", timer, EXIT_TIMER_STATUS, "COUNT is not 1:", count);

    put_str("ok ");
    put_resource_name(timer->kind, timer->instance);
    put_str(": interrupt from gsi ");
    put_dec(timer->gsi);
    put_str(" on vector ");
    put_hex(vector);
    put_str(", status acknowledged\n");
}
