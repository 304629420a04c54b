/* The hot-plug guest (guest/hotplug.bin): shared between main.c (the controller, the table
 * views and their diff) and devices.c (using and releasing the resources that come and go).
 * It links the demo's objects (guest/demo/, all but main.c) for the console, the table,
 * interrupts and the waits. Behaviour and output: guest/README.md. */
#ifndef HOTPLUG_H
#define HOTPLUG_H

#include <stdint.h>

#include "../demo/bootinfo.h"
#include "../demo/interrupts.h"

/* Vectors: inside the demo's device range (VECTOR_DEVICE_BASE up to 24 vectors), whose
 * handler counts each delivery and writes EOI, so the demo's interrupt code takes them as
 * they are. */
#define VECTOR_HOTPLUG 0x50 /* the controller's GSI: the table changed */
#define VECTOR_COM1 0x51    /* COM1's GSI (4): received data */
#define VECTOR_TIMER 0x52   /* the hot-plugged timer under test (one at a time) */
_Static_assert(VECTOR_HOTPLUG >= VECTOR_DEVICE_BASE && VECTOR_TIMER < VECTOR_DEVICE_BASE + 24,
               "the demo's dispatcher counts these vectors");

/* IOAPIC pins are GSIs 0..23. */
#define IOAPIC_PINS 24
/* COM1's IRQ when the table's uart entry names none (docs/guest-abi.md, "Port I/O"). */
#define COM1_GSI 4

/* The IOAPIC whose redirection entries devices.c masks again after use. */
void devices_init(uint64_t ioapic_base);
/* Masks IOAPIC pin `gsi` (ioapic_route unmasks it). */
void ioapic_mask(uint32_t gsi);

/* A resource that appeared in the table: print "added ...", exercise it, print "ok ...";
 * on a failure print the FAIL line and exit with the check's status. */
void use_timer(const struct bootinfo_entry *timer);
void use_dma_console(const struct bootinfo_entry *console);
void use_ram(const struct bootinfo_entry *ram);
/* A resource marked REMOVING: stop using it (a timer is disarmed and its pin masked). */
void stop_using(const struct bootinfo_entry *entry);

#endif
