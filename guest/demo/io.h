/* Port I/O and MMIO accessors. Device registers are 32-bit, accessed with aligned 32-bit
 * loads and stores (docs/guest-abi.md). */
#ifndef DEMO_IO_H
#define DEMO_IO_H

#include <stdint.h>

static inline void outb(uint16_t port, uint8_t value) {
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port) : "memory");
}

static inline uint8_t inb(uint16_t port) {
    uint8_t value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port) : "memory");
    return value;
}

static inline uint32_t mmio_read32(uint64_t address) {
    return *(volatile uint32_t *)(uintptr_t)address;
}

static inline void mmio_write32(uint64_t address, uint32_t value) {
    *(volatile uint32_t *)(uintptr_t)address = value;
}

static inline uint64_t ram_read64(uint64_t address) {
    return *(volatile uint64_t *)(uintptr_t)address;
}

static inline void ram_write64(uint64_t address, uint64_t value) {
    *(volatile uint64_t *)(uintptr_t)address = value;
}

#endif
