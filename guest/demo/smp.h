/* Multiprocessor start-up: the BSP starts every AP of the boot-information table with
 * INIT-SIPI-SIPI and checks that each one runs (docs/guest-abi.md). */
#ifndef DEMO_SMP_H
#define DEMO_SMP_H

#include <stdint.h>

#include "bootinfo.h"

/* With more than one CPU entry: starts the APs, splits a sum among all CPUs, sends each AP
 * the IPI VECTOR_IPI and waits for its acknowledgement, prints the result; exits 12 on a
 * failure. With one CPU entry, or none (older minivmm), returns without any output. Needs
 * interrupts_init first. */
void smp_run(const struct bootinfo_header *header);
/* VECTOR_IPI arrived on this CPU (called from the interrupt handler, before EOI). */
void smp_ipi_received(void);

#endif
