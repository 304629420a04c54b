/* COM1 output by polling LSR.THRE, and the failure path that names a check. */
#ifndef DEMO_CONSOLE_H
#define DEMO_CONSOLE_H

#include <stdint.h>

void console_init(void);
void put_char(char c);
void put_str(const char *s);
/* Lowercase hex with a 0x prefix and no padding, e.g. 0x3f8. */
void put_hex(uint64_t value);
void put_dec(uint64_t value);
/* "name #instance", e.g. "timer #1". */
void put_resource_name(uint16_t kind, uint16_t instance);

/* Exit statuses: one per check, documented in guest/README.md. */
enum exit_status {
    EXIT_OK = 0,
    EXIT_BOOTINFO_HEADER = 1,
    EXIT_BOOTINFO_MISSING = 2,
    EXIT_TIMER_MAGIC = 3,
    EXIT_TIMER_INTERRUPT = 4,
    EXIT_TIMER_STATUS = 5,
    EXIT_DMA_MAGIC = 6,
    EXIT_DMA_REQUEST = 7,
    EXIT_DMA_BAD_ADDRESS = 8,
    EXIT_RAM_PATTERN = 9,
    EXIT_CPU_EXCEPTION = 10,
    EXIT_UNEXPECTED_INTERRUPT = 11,
    EXIT_SMP = 12,
    EXIT_HOTPLUG = 13, /* the hot-plug guest (guest/hotplug/) only */
};

/* Starts the line "FAIL <check>: "; the caller prints details, then calls fail_exit. */
void fail_begin(const char *check);
/* Ends the failure line and leaves the VM through the exit port with `status`. */
__attribute__((noreturn)) void fail_exit(enum exit_status status);

#endif
