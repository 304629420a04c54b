/* The demo's checks, one per device kind. Each prints an "ok ..." line or fails. */
#ifndef DEMO_CHECKS_H
#define DEMO_CHECKS_H

#include "bootinfo.h"

/* `index` is the timer's position among timers; it picks vector 0x40 + index. */
void check_timer(const struct bootinfo_entry *timer, uint8_t index);
void check_dma_console(const struct bootinfo_entry *console,
                       const struct bootinfo_header *header);
void check_ram(const struct bootinfo_entry *ram);

#endif
