/*
 * Constants of the minivmm guest ABI (docs/guest-abi.md), shared by the demo guest (C)
 * and the test guests (assembly). Only #defines here so both languages can include it.
 */
#ifndef MINIVMM_GUEST_ABI_H
#define MINIVMM_GUEST_ABI_H

/* Exit port: OUT of v <= 63 ends the VM with status v. */
#define EXIT_PORT 0xF4

/* COM1, 16550 UART. */
#define COM1_BASE 0x3F8
#define UART_RBR 0 /* receive buffer (read, DLAB=0) */
#define UART_THR 0 /* transmit holding (write, DLAB=0) */
#define UART_DLL 0 /* divisor latch low (DLAB=1) */
#define UART_IER 1
#define UART_DLM 1 /* divisor latch high (DLAB=1) */
#define UART_FCR 2
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_LSR_DR 0x01   /* receive data ready */
#define UART_LSR_THRE 0x20 /* transmit holding register empty */
#define UART_LCR_DLAB 0x80
#define UART_LCR_8N1 0x03

/* Legacy 8259 PIC data ports (mask registers). */
#define PIC1_DATA 0x21
#define PIC2_DATA 0xA1

/* Boot-information table. */
#define BOOTINFO_MAGIC 0x424D564D /* "MVMB" */
#define BOOTINFO_VERSION 1
#define BOOTINFO_HEADER_SIZE 16
#define BOOTINFO_ENTRY_SIZE 32
#define BOOTINFO_NO_GSI 0xFFFFFFFF
#define BOOTINFO_NO_SLOT 0xFFFFFFFF
/* Header field offsets. */
#define BI_MAGIC 0
#define BI_VERSION 4
#define BI_HEADER_SIZE 6
#define BI_COUNT 8
#define BI_ENTRY_SIZE 10
#define BI_TOTAL_SIZE 12
/* Entry field offsets. */
#define BE_KIND 0
#define BE_INSTANCE 2
#define BE_GSI 4
#define BE_BASE 8
#define BE_SIZE 16
#define BE_SLOT 24
#define BE_FLAGS 28
#define BE_FLAG_REMOVING 0x1 /* removal requested: stop using it, then EJECT it */

#define KIND_RAM 1
#define KIND_EXIT_PORT 2
#define KIND_UART 3
#define KIND_IOAPIC 4
#define KIND_LAPIC 5
#define KIND_TIMER 6
#define KIND_DMA_CONSOLE 7
/* One per vCPU, after every other entry: instance = local APIC ID (= KVM vCPU ID; 0 is the
 * BSP, the APs are 1..N-1), no GSI, base 0, size 0, no slot. Entries of a kind a guest does
 * not know must be skipped: new kinds may appear at any position in version 1. */
#define KIND_CPU 8
/* ABI version 2: the hot-plug controller, always present (instance 0, MMIO, a GSI). */
#define KIND_HOTPLUG_CONTROLLER 9

/* Hot-plug controller registers (32-bit). */
#define HOTPLUG_MAGIC_VALUE 0x474C5048 /* "HPLG" */
#define HOTPLUG_MAGIC 0x00
#define HOTPLUG_GENERATION 0x04 /* +1 at every table rewrite */
#define HOTPLUG_CTRL 0x08
#define HOTPLUG_STATUS 0x0C /* write 1 to a bit to clear it */
#define HOTPLUG_EJECT 0x10  /* write kind << 16 | instance of a REMOVING entry */
#define HOTPLUG_CTRL_NOTIFY 0x1
#define HOTPLUG_STATUS_CHANGED 0x1
#define HOTPLUG_STATUS_EJECT_ERROR 0x2
/* The hot-plug window: RAM plugged in later lies here and is identity-mapped at entry.
 * Its base depends on the boot RAM size: read RAM entries from the table. */
#define HOTPLUG_RAM_ALIGNMENT 0x200000

/* Timer device registers (32-bit). */
#define TIMER_MAGIC_VALUE 0x524D4954 /* "TIMR" */
#define TIMER_MAGIC 0x00
#define TIMER_DELAY_US 0x04
#define TIMER_STATUS 0x08
#define TIMER_COUNT 0x0C
#define TIMER_STATUS_FIRED 0x1
#define TIMER_STATUS_ARMED 0x2

/* DMA console registers (32-bit). */
#define DMA_MAGIC_VALUE 0x414D4443 /* "CDMA" */
#define DMA_MAGIC 0x00
#define DMA_STATUS 0x04
#define DMA_ADDR_LO 0x08
#define DMA_ADDR_HI 0x0C
#define DMA_LENGTH 0x10
#define DMA_DOORBELL 0x14
#define DMA_CTRL 0x18
#define DMA_WRITTEN 0x1C
#define DMA_STATUS_OK 0
#define DMA_STATUS_BAD 1
#define DMA_MAX_LENGTH 0x100000

/* IOAPIC (indirect registers) and local APIC (memory-mapped registers). */
#define IOAPIC_IOREGSEL 0x00
#define IOAPIC_IOWIN 0x10
#define IOAPIC_REDIR_LOW(pin) (0x10 + 2 * (pin))
#define IOAPIC_REDIR_HIGH(pin) (0x11 + 2 * (pin))
#define IOAPIC_REDIR_MASKED (1u << 16)
#define LAPIC_ID 0x20 /* bits 31:24: this CPU's APIC ID */
#define LAPIC_ID_SHIFT 24
#define LAPIC_EOI 0xB0
#define LAPIC_SVR 0xF0
#define LAPIC_SVR_ENABLE 0x100
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_LVT_LINT0 0x350
#define LAPIC_LVT_MASKED (1u << 16)
#define LAPIC_TIMER_INITIAL 0x380
/* Interprocessor interrupts: write ICR_HIGH (destination) first; writing ICR_LOW sends. */
#define LAPIC_ICR_LOW 0x300
#define LAPIC_ICR_HIGH 0x310
#define LAPIC_ICR_DEST_SHIFT 24     /* ICR_HIGH = APIC ID << 24 (physical destination) */
#define LAPIC_ICR_INIT 0x4500       /* INIT, level assert */
#define LAPIC_ICR_STARTUP 0x4600    /* start-up IPI: | (start address >> 12) */
#define LAPIC_ICR_FIXED 0x4000      /* fixed delivery, level assert: | vector */
#define LAPIC_TIMER_DIVIDE 0x3E0
#define LAPIC_TIMER_DIVIDE_BY_16 0x3

/* Where an image is loaded and where free RAM for test guests' buffers starts. */
#define IMAGE_BASE 0x100000

/* Every CPU's local APIC is at this address (also in the local-APIC table entry). */
#define LAPIC_BASE 0xFEE00000
/* minivmm's identity page tables (CR3 at entry): valid for as long as a guest leaves
 * 0x10000-0x6FFFF alone, so APs may load the same CR3. */
#define BOOT_PAGE_TABLES 0x10000

/* Guest-owned low RAM, never written by minivmm: 0x4000-0xFFFF and 0x80000-0x9FFFF
 * (docs/guest-abi.md, "Multiprocessor start-up"). The guests in this tree use them for
 * the AP start-up trampoline (one page; the SIPI vector is its address >> 12) and one
 * 2 KiB stack per AP (APIC ID n: top at AP_STACKS_BASE + (n + 1) * AP_STACK_SIZE, so
 * APIC IDs up to 63 fit below 0xA0000). */
#define AP_TRAMPOLINE 0x8000
#define AP_STACKS_BASE 0x80000
#define AP_STACK_SIZE 0x800
#define AP_MAX_CPUS 64

#endif
