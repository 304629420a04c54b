/* IDT, legacy PIC masking, local APIC and IOAPIC set-up, and waiting for a vector. */
#ifndef DEMO_INTERRUPTS_H
#define DEMO_INTERRUPTS_H

#include <stdint.h>

/* Device interrupts use vectors from here up, one per timer. */
#define VECTOR_DEVICE_BASE 0x40
/* The local APIC timer, used as a watchdog while waiting for a device interrupt. */
#define VECTOR_WATCHDOG 0x3F
/* The fixed IPI the BSP sends every AP once (smp.c). */
#define VECTOR_IPI 0x60
#define VECTOR_SPURIOUS 0xFF

/* Loads an IDT covering all 256 vectors, masks the 8259 PIC, software-enables the
 * local APIC at `lapic_base`. Interrupts stay disabled. */
void interrupts_init(uint64_t lapic_base, uint64_t ioapic_base);
/* On an AP, after interrupts_init ran on the BSP: loads the same IDT and software-enables
 * this CPU's local APIC (an AP's LVTs are masked after INIT). Interrupts stay disabled. */
void interrupts_init_ap(void);
/* Points IOAPIC pin `gsi` at `vector`: fixed delivery to APIC 0, edge, active high, unmasked. */
void ioapic_route(uint32_t gsi, uint8_t vector);
/* Number of times `vector` has been delivered so far. */
uint32_t interrupt_count(uint8_t vector);
/* Waits with `sti; hlt` until `vector` has been delivered more than `seen` times.
 * Returns 1 if it was, 0 if the watchdog (about `timeout_ms` ms, at most 68000) expired first. */
int wait_for_vector(uint8_t vector, uint32_t seen, uint32_t timeout_ms);
/* Spins until `*counter` (written by other CPUs) reaches `target`. Returns 1 if it did, 0 if
 * the watchdog (about `timeout_ms` ms) expired first. */
int wait_for_count(const volatile uint32_t *counter, uint32_t target, uint32_t timeout_ms);

#endif
