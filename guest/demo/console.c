#include "console.h"

#include "../abi.h"
#include "io.h"

void console_init(void) {
    outb(COM1_BASE + UART_IER, 0); /* polling only: no UART interrupts */
    outb(COM1_BASE + UART_LCR, UART_LCR_DLAB);
    outb(COM1_BASE + UART_DLL, 1); /* 115200 baud */
    outb(COM1_BASE + UART_DLM, 0);
    outb(COM1_BASE + UART_LCR, UART_LCR_8N1);
    outb(COM1_BASE + UART_FCR, 0x07); /* enable and clear both FIFOs */
}

void put_char(char c) {
    while ((inb(COM1_BASE + UART_LSR) & UART_LSR_THRE) == 0) {
    }
    outb(COM1_BASE + UART_THR, (uint8_t)c);
}

void put_str(const char *s) {
    while (*s != '\0') {
        put_char(*s++);
    }
}

void put_hex(uint64_t value) {
    char digits[16];
    int count = 0;
    do {
        digits[count++] = "0123456789abcdef"[value & 0xF];
        value >>= 4;
    } while (value != 0);
    put_str("0x");
    while (count > 0) {
        put_char(digits[--count]);
    }
}

void put_dec(uint64_t value) {
    char digits[20];
    int count = 0;
    do {
        digits[count++] = (char)('0' + value % 10);
        value /= 10;
    } while (value != 0);
    while (count > 0) {
        put_char(digits[--count]);
    }
}

static const char *kind_name(uint16_t kind) {
    switch (kind) {
    case KIND_RAM: return "ram";
    case KIND_EXIT_PORT: return "exit-port";
    case KIND_UART: return "uart";
    case KIND_IOAPIC: return "ioapic";
    case KIND_LAPIC: return "local-apic";
    case KIND_TIMER: return "timer";
    case KIND_DMA_CONSOLE: return "dma-console";
    default: return 0;
    }
}

void put_resource_name(uint16_t kind, uint16_t instance) {
    const char *name = kind_name(kind);
    if (name != 0) {
        put_str(name);
    } else {
        put_str("kind-");
        put_dec(kind);
    }
    put_str(" #");
    put_dec(instance);
}

void fail_begin(const char *check) {
    put_str("FAIL ");
    put_str(check);
    put_str(": ");
}

void fail_exit(enum exit_status status) {
    put_char('\n');
    outb(EXIT_PORT, (uint8_t)status);
    for (;;) {
        __asm__ volatile("cli; hlt");
    }
}
