/* The demo's checks, one per device kind. Each prints an "ok ..." line or fails. */
#ifndef DEMO_CHECKS_H
#define DEMO_CHECKS_H

#include "../abi.h"
#include "bootinfo.h"
#include "io.h"

/* `index` is the timer's position among timers; it picks vector 0x40 + index. */
void check_timer(const struct bootinfo_entry *timer, uint8_t index);
void check_dma_console(const struct bootinfo_entry *console,
                       const struct bootinfo_header *header);
void check_ram(const struct bootinfo_entry *ram);

/* Helpers shared with the hot-plug guest (guest/hotplug/), inline so that each image keeps
 * only the code it uses. */

/* One DMA-console request: `length` bytes at guest-physical `address` to stdout through the
 * console whose window is at `base`. Returns STATUS (DMA_STATUS_OK or DMA_STATUS_BAD). */
static inline uint32_t dma_request(uint64_t base, uint64_t address, uint32_t length) {
    mmio_write32(base + DMA_ADDR_LO, (uint32_t)address);
    mmio_write32(base + DMA_ADDR_HI, (uint32_t)(address >> 32));
    mmio_write32(base + DMA_LENGTH, length);
    mmio_write32(base + DMA_DOORBELL, 1);
    return mmio_read32(base + DMA_STATUS);
}

/* An address-dependent pattern, so aliasing between two addresses shows up. */
static inline uint64_t ram_pattern(uint64_t address) {
    return (address * 0x9E3779B97F4A7C15ull) ^ 0xA5A5A5A55A5A5A5Aull;
}

#endif
