/*
 * The SMP part of the demo. Every CPU, APIC ID i of N, adds the numbers k in 1..SUM_LAST
 * with k % N == (i + 1) % N to a shared total with `lock xadd`; the BSP checks the total.
 * Each AP prints "cpu N up" under a spin lock so that lines never interleave, then waits
 * for one fixed IPI from the BSP and acknowledges it. CPL0 code is slow on nested KVM
 * (every instruction emulated), so all of this is kept to a few hundred instructions per AP.
 */
#include "smp.h"

#include "../abi.h"
#include "console.h"
#include "interrupts.h"
#include "io.h"

#define SUM_LAST 64
#define SUM_EXPECTED (SUM_LAST * (SUM_LAST + 1) / 2)
#define SMP_TIMEOUT_MS 5000

/* Defined in ap-trampoline.inc (through smp-trampoline.S). */
void ap_trampoline_install(void);
void ap_start(uint32_t apic_id);
__attribute__((noreturn)) void ap_main(uint32_t apic_id);

static volatile uint32_t console_lock;
static volatile uint32_t cpu_count; /* set by the BSP before the first SIPI */
static volatile uint32_t total;
static volatile uint32_t aps_ready;        /* APs that printed, added their share, can take the IPI */
static volatile uint32_t aps_acknowledged; /* APs that saw the IPI */
static volatile uint8_t ipi_seen[AP_MAX_CPUS];

static uint32_t fetch_add(volatile uint32_t *counter, uint32_t value) {
    __asm__ volatile("lock xadd %0, %1" : "+r"(value), "+m"(*counter) : : "memory");
    return value;
}

static void console_acquire(void) {
    while (__atomic_exchange_n(&console_lock, 1, __ATOMIC_ACQUIRE) != 0) {
        while (console_lock != 0) {
            __asm__ volatile("pause");
        }
    }
}

static void console_release(void) {
    __atomic_store_n(&console_lock, 0, __ATOMIC_RELEASE);
}

static void say_up(uint32_t apic_id) {
    console_acquire();
    put_str("cpu ");
    put_dec(apic_id);
    put_str(" up\n");
    console_release();
}

static void add_share(uint32_t apic_id) {
    uint32_t share = 0;
    for (uint32_t k = apic_id + 1; k <= SUM_LAST; k += cpu_count) share += k;
    fetch_add(&total, share);
}

static uint32_t lapic_id(void) {
    return mmio_read32(LAPIC_BASE + LAPIC_ID) >> LAPIC_ID_SHIFT;
}

void smp_ipi_received(void) {
    ipi_seen[lapic_id() % AP_MAX_CPUS] = 1;
}

void ap_main(uint32_t apic_id) {
    interrupts_init_ap(); /* the BSP's IDT; this CPU's local APIC enabled, or it drops the IPI */
    say_up(apic_id);
    add_share(apic_id);
    fetch_add(&aps_ready, 1);
    /* The IPI may already be pending: `sti; hlt` takes it and then wakes at once. */
    while (ipi_seen[apic_id] == 0) {
        __asm__ volatile("sti; hlt; cli" : : : "memory");
    }
    fetch_add(&aps_acknowledged, 1);
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}

static __attribute__((noreturn)) void smp_fail(const char *what, uint32_t value, const char *rest) {
    fail_begin("smp");
    put_str(what);
    put_dec(value);
    put_str(rest);
    fail_exit(EXIT_SMP);
}

static void send_ipi(uint32_t apic_id, uint32_t command) {
    mmio_write32(LAPIC_BASE + LAPIC_ICR_HIGH, apic_id << LAPIC_ICR_DEST_SHIFT);
    mmio_write32(LAPIC_BASE + LAPIC_ICR_LOW, command); /* sends */
}

void smp_run(const struct bootinfo_header *header) {
    uint32_t cpus = 0;
    for (uint16_t i = 0; i < header->entry_count; i++) {
        if (bootinfo_entry(header, i)->kind == KIND_CPU) cpus++;
    }
    if (cpus <= 1) return; /* one CPU, or a minivmm that predates CPU entries */
    /* The shares assume APIC IDs 0..N-1 (the ABI promises them); the stacks fit 64. */
    for (uint16_t i = 0; i < header->entry_count; i++) {
        const struct bootinfo_entry *entry = bootinfo_entry(header, i);
        if (entry->kind == KIND_CPU && (entry->instance >= cpus || entry->instance >= AP_MAX_CPUS)) {
            smp_fail("cpu #", entry->instance, ": APIC ID not below the CPU count (or 64)");
        }
    }
    cpu_count = cpus;
    say_up(0);
    ap_trampoline_install();
    for (uint16_t i = 0; i < header->entry_count; i++) {
        const struct bootinfo_entry *entry = bootinfo_entry(header, i);
        if (entry->kind == KIND_CPU && entry->instance != 0) ap_start(entry->instance);
    }
    add_share(0);
    if (!wait_for_count(&aps_ready, cpus - 1, SMP_TIMEOUT_MS)) {
        smp_fail("only ", aps_ready, " APs started within 5 s");
    }
    for (uint32_t id = 1; id < cpus; id++) send_ipi(id, LAPIC_ICR_FIXED | VECTOR_IPI);
    if (!wait_for_count(&aps_acknowledged, cpus - 1, SMP_TIMEOUT_MS)) {
        smp_fail("only ", aps_acknowledged, " APs acknowledged the IPI within 5 s");
    }
    if (total != SUM_EXPECTED) smp_fail("sum of 1..64 is ", total, ", not 2080");

    put_str("ok smp: ");
    put_dec(cpus);
    put_str(" cpus up, sum of 1..64 = ");
    put_dec(total);
    put_str(", ipi ");
    put_hex(VECTOR_IPI);
    put_str(" acknowledged by ");
    put_dec(cpus - 1);
    put_str(" aps\n");
}
