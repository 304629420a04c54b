#include "interrupts.h"

#include "../abi.h"
#include "console.h"
#include "io.h"
#include "smp.h"

struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attributes;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
};
_Static_assert(sizeof(struct idt_gate) == 16, "IDT gate layout");

/* What isr_common pushed, lowest address first, then what the CPU pushed. */
struct interrupt_frame {
    uint64_t r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
    uint64_t vector, error_code;
    uint64_t rip, cs, rflags, rsp, ss;
};

#define CODE_SELECTOR 0x08
#define INTERRUPT_GATE 0x8E /* present, DPL 0, 64-bit interrupt gate */
#define STUB_SIZE 16

extern const char isr_stubs[];
void interrupt_dispatch(struct interrupt_frame *frame);

static struct idt_gate idt[256] __attribute__((aligned(16)));
static volatile uint32_t delivered[256];
static uint64_t lapic;
static uint64_t ioapic;

static void load_idt(void) {
    struct __attribute__((packed)) {
        uint16_t limit;
        uint64_t base;
    } idtr = {sizeof(idt) - 1, (uint64_t)(uintptr_t)idt};
    __asm__ volatile("lidt %0" : : "m"(idtr) : "memory");
}

void interrupts_init(uint64_t lapic_base, uint64_t ioapic_base) {
    lapic = lapic_base;
    ioapic = ioapic_base;
    for (int vector = 0; vector < 256; vector++) {
        uint64_t handler = (uint64_t)(uintptr_t)(isr_stubs + vector * STUB_SIZE);
        idt[vector] = (struct idt_gate){
            .offset_low = (uint16_t)handler,
            .selector = CODE_SELECTOR,
            .ist = 0,
            .type_attributes = INTERRUPT_GATE,
            .offset_mid = (uint16_t)(handler >> 16),
            .offset_high = (uint32_t)(handler >> 32),
            .reserved = 0,
        };
    }
    load_idt();

    /* The IOAPIC delivers device interrupts; keep the 8259 out of the way. */
    outb(PIC1_DATA, 0xFF);
    outb(PIC2_DATA, 0xFF);
    mmio_write32(lapic + LAPIC_LVT_LINT0, LAPIC_LVT_MASKED);
    mmio_write32(lapic + LAPIC_LVT_TIMER, LAPIC_LVT_MASKED | VECTOR_WATCHDOG);
    mmio_write32(lapic + LAPIC_SVR, LAPIC_SVR_ENABLE | VECTOR_SPURIOUS);
}

void interrupts_init_ap(void) {
    load_idt();
    mmio_write32(lapic + LAPIC_SVR, LAPIC_SVR_ENABLE | VECTOR_SPURIOUS);
}

void ioapic_route(uint32_t gsi, uint8_t vector) {
    mmio_write32(ioapic + IOAPIC_IOREGSEL, IOAPIC_REDIR_HIGH(gsi));
    mmio_write32(ioapic + IOAPIC_IOWIN, 0); /* destination: APIC ID 0 */
    mmio_write32(ioapic + IOAPIC_IOREGSEL, IOAPIC_REDIR_LOW(gsi));
    /* Fixed delivery, physical destination, active high, edge, unmasked. */
    mmio_write32(ioapic + IOAPIC_IOWIN, vector);
}

uint32_t interrupt_count(uint8_t vector) {
    return delivered[vector];
}

static void watchdog_arm(uint32_t timeout_ms) {
    /* KVM's local APIC timer counts at 1 GHz: divided by 16, 62,500 ticks per ms. */
    mmio_write32(lapic + LAPIC_TIMER_DIVIDE, LAPIC_TIMER_DIVIDE_BY_16);
    mmio_write32(lapic + LAPIC_LVT_TIMER, VECTOR_WATCHDOG); /* one-shot, unmasked */
    mmio_write32(lapic + LAPIC_TIMER_INITIAL, timeout_ms * 62500u);
}

static void watchdog_disarm(void) {
    mmio_write32(lapic + LAPIC_TIMER_INITIAL, 0);
    mmio_write32(lapic + LAPIC_LVT_TIMER, LAPIC_LVT_MASKED | VECTOR_WATCHDOG);
}

int wait_for_vector(uint8_t vector, uint32_t seen, uint32_t timeout_ms) {
    uint32_t watchdog_seen = delivered[VECTOR_WATCHDOG];
    watchdog_arm(timeout_ms);
    /* Interrupts are off while testing; `sti; hlt` opens them only across the halt, so a
     * delivery between the test and the halt still wakes it. */
    while (delivered[vector] == seen && delivered[VECTOR_WATCHDOG] == watchdog_seen) {
        __asm__ volatile("sti; hlt; cli" : : : "memory");
    }
    watchdog_disarm();
    return delivered[vector] != seen;
}

int wait_for_count(const volatile uint32_t *counter, uint32_t target, uint32_t timeout_ms) {
    uint32_t watchdog_seen = delivered[VECTOR_WATCHDOG];
    watchdog_arm(timeout_ms);
    /* Interrupts open for one instruction per round, so the watchdog can end the wait. */
    while (*counter < target && delivered[VECTOR_WATCHDOG] == watchdog_seen) {
        __asm__ volatile("sti; pause; cli" : : : "memory");
    }
    watchdog_disarm();
    return *counter >= target;
}

static __attribute__((noreturn)) void report_exception(const struct interrupt_frame *frame) {
    fail_begin("cpu-exception");
    put_str("vector ");
    put_dec(frame->vector);
    put_str(" error ");
    put_hex(frame->error_code);
    put_str(" rip ");
    put_hex(frame->rip);
    fail_exit(EXIT_CPU_EXCEPTION);
}

void interrupt_dispatch(struct interrupt_frame *frame) {
    uint64_t vector = frame->vector;
    if (vector < 32) report_exception(frame);
    if (vector == VECTOR_SPURIOUS) return; /* spurious: no EOI */
    if (vector == VECTOR_IPI) {
        /* Handled apart: APs take it concurrently, and delivered[] is not updated atomically. */
        smp_ipi_received();
        mmio_write32(lapic + LAPIC_EOI, 0);
        return;
    }
    delivered[vector]++;
    mmio_write32(lapic + LAPIC_EOI, 0);
    if (vector != VECTOR_WATCHDOG && (vector < VECTOR_DEVICE_BASE || vector >= VECTOR_DEVICE_BASE + 24)) {
        fail_begin("unexpected-interrupt");
        put_str("vector ");
        put_dec(vector);
        fail_exit(EXIT_UNEXPECTED_INTERRUPT);
    }
}
