#include "../abi.h"
#include "checks.h"
#include "console.h"
#include "io.h"

/* Room for "hello from the demo guest through dma-console #N\n". */
static char message[64];

static __attribute__((noreturn)) void dma_fail(const char *check, const struct bootinfo_entry *console,
                                               enum exit_status status, const char *what, uint64_t value) {
    fail_begin(check);
    put_resource_name(console->kind, console->instance);
    put_str(" ");
    put_str(what);
    put_str(" ");
    put_hex(value);
    fail_exit(status);
}

static uint32_t append(uint32_t length, const char *text) {
    while (*text != '\0' && length < sizeof(message)) message[length++] = *text++;
    return length;
}

static uint32_t build_message(uint16_t instance) {
    uint32_t length = append(0, "hello from the demo guest through dma-console #");
    char digits[6];
    int count = 0;
    do {
        digits[count++] = (char)('0' + instance % 10);
        instance /= 10;
    } while (instance != 0);
    while (count > 0 && length < sizeof(message)) message[length++] = digits[--count];
    return append(length, "\n");
}

static void expect_rejected(const struct bootinfo_entry *console, uint64_t address, const char *why) {
    uint64_t base = console->base;
    uint32_t written = mmio_read32(base + DMA_WRITTEN);
    uint32_t status = dma_request(base, address, 16);
    if (status != DMA_STATUS_BAD) {
        dma_fail("dma-bad-address", console, EXIT_DMA_BAD_ADDRESS, "status for a bad address is", status);
    }
    if (mmio_read32(base + DMA_WRITTEN) != written) {
        dma_fail("dma-bad-address", console, EXIT_DMA_BAD_ADDRESS, "wrote bytes for a bad address", address);
    }
    put_str("ok ");
    put_resource_name(console->kind, console->instance);
    put_str(": 16 bytes at ");
    put_hex(address);
    put_str(" (");
    put_str(why);
    put_str(") reported status 1\n");
}

void check_dma_console(const struct bootinfo_entry *console, const struct bootinfo_header *header) {
    uint64_t base = console->base;
    uint32_t magic = mmio_read32(base + DMA_MAGIC);
    if (magic != DMA_MAGIC_VALUE) dma_fail("dma-magic", console, EXIT_DMA_MAGIC, "magic", magic);

    uint32_t length = build_message(console->instance);
    uint32_t written = mmio_read32(base + DMA_WRITTEN);
    uint32_t status = dma_request(base, (uint64_t)(uintptr_t)message, length);
    if (status != DMA_STATUS_OK) dma_fail("dma-request", console, EXIT_DMA_REQUEST, "status", status);
    uint32_t now_written = mmio_read32(base + DMA_WRITTEN);
    if (now_written - written != length) {
        dma_fail("dma-request", console, EXIT_DMA_REQUEST, "WRITTEN advanced by", now_written - written);
    }
    put_str("ok ");
    put_resource_name(console->kind, console->instance);
    put_str(": wrote ");
    put_dec(length);
    put_str(" bytes\n");

    const struct bootinfo_entry *low_ram = bootinfo_require(header, KIND_RAM);
    expect_rejected(console, bootinfo_ram_top(header), "past the end of RAM");
    expect_rejected(console, low_ram->base + low_ram->size - 8, "across the end of ram #0");
}
