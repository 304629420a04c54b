/*
 * kvm-baseline: the smallest KVM run loop that boots a flat guest the way minivmm does
 * (docs/guest-abi.md: image at 1 MiB, 64-bit long mode, same GDT, page tables, boot
 * information header and registers, same in-kernel irqchip and PIT), used as the yardstick
 * for minivmm's cost per VM exit.
 *
 * Devices: only the exit port 0xF4 (an OUT of v ends the run with status v, or 76 when
 * v > 63). Every other port write is ignored, port reads and MMIO reads return all ones.
 * Any other exit prints its reason and exits 76.
 *
 * Usage: kvm-baseline IMAGE [MEMORY_MIB]   (default 128, at most 3072)
 * With KVM_BASELINE_STATS=1 in the environment it prints the exit count and the run
 * loop's nanoseconds per exit on stderr.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

enum {
    GDT_ADDRESS = 0x1000,
    BOOT_INFO_ADDRESS = 0x2000,
    PML4_ADDRESS = 0x10000,
    STACK_TOP = 0x80000,
    IMAGE_BASE = 0x100000,
    EXIT_PORT = 0xF4,
    GUEST_ERROR = 76,
};
static const uint64_t TSS_ADDRESS = 0xFEFFD000;
static const uint64_t IDENTITY_MAP_ADDRESS = 0xFEFFC000;
static const uint64_t TWO_MIB = 2ull << 20;

static void die(const char *what) {
    fprintf(stderr, "kvm-baseline: %s: %s\n", what, strerror(errno));
    exit(71);
}

static void put64(uint8_t *ram, uint64_t address, uint64_t value) {
    memcpy(ram + address, &value, sizeof value);
}

/* Identity map of the low 4 GiB (and so of all low RAM) with 2 MiB pages:
 * PML4 -> one PDPT -> four page directories, as minivmm builds them. */
static void build_page_tables(uint8_t *ram) {
    const uint64_t pdpt = PML4_ADDRESS + 0x1000, first_pd = PML4_ADDRESS + 0x2000;
    put64(ram, PML4_ADDRESS, pdpt | 0x3);
    for (uint64_t gib = 0; gib < 4; gib++) {
        uint64_t pd = first_pd + gib * 0x1000;
        put64(ram, pdpt + gib * 8, pd | 0x3);
        for (uint64_t entry = 0; entry < 512; entry++)
            put64(ram, pd + entry * 8, ((gib * 512 + entry) * TWO_MIB) | 0x83);
    }
}

static void build_gdt(uint8_t *ram) {
    put64(ram, GDT_ADDRESS, 0);
    put64(ram, GDT_ADDRESS + 8, 0x00AF9A000000FFFFull);  /* 0x08: 64-bit code */
    put64(ram, GDT_ADDRESS + 16, 0x00CF92000000FFFFull); /* 0x10: flat data */
}

/* Header plus one RAM entry: all the perf guests need (they never read the table). */
static void build_boot_info(uint8_t *ram, uint64_t memory) {
    uint8_t *table = ram + BOOT_INFO_ADDRESS;
    uint32_t magic = 0x424D564D, total = 16 + 32, slot = 0, none = 0xFFFFFFFF;
    uint16_t version = 1, header = 16, count = 1, entry_size = 32, kind = 1, instance = 0;
    uint64_t base = 0;
    memcpy(table + 0, &magic, 4);
    memcpy(table + 4, &version, 2);
    memcpy(table + 6, &header, 2);
    memcpy(table + 8, &count, 2);
    memcpy(table + 10, &entry_size, 2);
    memcpy(table + 12, &total, 4);
    memcpy(table + 16, &kind, 2);
    memcpy(table + 18, &instance, 2);
    memcpy(table + 20, &none, 4);
    memcpy(table + 24, &base, 8);
    memcpy(table + 32, &memory, 8);
    memcpy(table + 40, &slot, 4);
}

static struct kvm_segment flat_segment(uint16_t selector, uint8_t type, int code) {
    struct kvm_segment segment = {
        .base = 0, .limit = 0xFFFFFFFF, .selector = selector, .type = type,
        .present = 1, .dpl = 0, .db = code ? 0 : 1, .s = 1, .l = code ? 1 : 0, .g = 1,
    };
    return segment;
}

static void load_image(const char *path, uint8_t *ram, uint64_t memory) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "kvm-baseline: %s: %s\n", path, strerror(errno));
        exit(66);
    }
    struct stat info;
    if (fstat(fd, &info) != 0) die("fstat");
    if (info.st_size <= 0 || (uint64_t)info.st_size > memory - IMAGE_BASE) {
        fprintf(stderr, "kvm-baseline: %s: empty or larger than RAM above 1 MiB\n", path);
        exit(65);
    }
    for (off_t done = 0; done < info.st_size;) {
        ssize_t got = read(fd, ram + IMAGE_BASE + done, (size_t)(info.st_size - done));
        if (got <= 0) die("read image");
        done += got;
    }
    close(fd);
}

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: kvm-baseline IMAGE [MEMORY_MIB]\n");
        return 64;
    }
    uint64_t memory = (argc == 3 ? strtoull(argv[2], NULL, 10) : 128) << 20;
    if (memory < TWO_MIB || memory > (3ull << 30)) {
        fprintf(stderr, "kvm-baseline: memory must be 2..3072 MiB\n");
        return 64;
    }

    int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm < 0) { perror("kvm-baseline: /dev/kvm"); return 69; }
    if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
        fprintf(stderr, "kvm-baseline: unsupported KVM API version\n");
        return 69;
    }
    int vm = ioctl(kvm, KVM_CREATE_VM, 0);
    if (vm < 0) die("KVM_CREATE_VM");
    if (ioctl(vm, KVM_SET_TSS_ADDR, TSS_ADDRESS) != 0) die("KVM_SET_TSS_ADDR");
    uint64_t identity = IDENTITY_MAP_ADDRESS;
    if (ioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &identity) != 0) die("KVM_SET_IDENTITY_MAP_ADDR");
    if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) != 0) die("KVM_CREATE_IRQCHIP");
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(vm, KVM_CREATE_PIT2, &pit) != 0) die("KVM_CREATE_PIT2");

    uint8_t *ram = mmap(NULL, memory, PROT_READ | PROT_WRITE,
                        MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (ram == MAP_FAILED) die("mmap guest RAM");
    struct kvm_userspace_memory_region region = {
        .slot = 0, .guest_phys_addr = 0, .memory_size = memory, .userspace_addr = (uint64_t)ram,
    };
    if (ioctl(vm, KVM_SET_USER_MEMORY_REGION, &region) != 0) die("KVM_SET_USER_MEMORY_REGION");

    build_gdt(ram);
    build_boot_info(ram, memory);
    build_page_tables(ram);
    load_image(argv[1], ram, memory);

    int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
    if (vcpu < 0) die("KVM_CREATE_VCPU");
    int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (run_size <= 0) die("KVM_GET_VCPU_MMAP_SIZE");
    struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
    if (run == MAP_FAILED) die("mmap kvm_run");

    int capacity = 256;
    struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + capacity * sizeof(struct kvm_cpuid_entry2));
    if (!cpuid) die("calloc");
    cpuid->nent = capacity;
    if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, cpuid) != 0) die("KVM_GET_SUPPORTED_CPUID");
    if (ioctl(vcpu, KVM_SET_CPUID2, cpuid) != 0) die("KVM_SET_CPUID2");
    free(cpuid);

    struct kvm_sregs sregs;
    if (ioctl(vcpu, KVM_GET_SREGS, &sregs) != 0) die("KVM_GET_SREGS");
    sregs.cs = flat_segment(0x08, 0xB, 1);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = flat_segment(0x10, 0x3, 0);
    sregs.gdt.base = GDT_ADDRESS;
    sregs.gdt.limit = 3 * 8 - 1;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;
    sregs.cr0 = 0x80010033; /* PG | WP | NE | ET | MP | PE */
    sregs.cr3 = PML4_ADDRESS;
    sregs.cr4 = 0x620;      /* OSXMMEXCPT | OSFXSR | PAE */
    sregs.efer = 0x500;     /* LMA | LME */
    if (ioctl(vcpu, KVM_SET_SREGS, &sregs) != 0) die("KVM_SET_SREGS");
    struct kvm_regs regs = {.rip = IMAGE_BASE, .rsp = STACK_TOP, .rdi = BOOT_INFO_ADDRESS, .rflags = 0x2};
    if (ioctl(vcpu, KVM_SET_REGS, &regs) != 0) die("KVM_SET_REGS");

    uint64_t exits = 0, started = now_ns();
    int status = -1;
    while (status < 0) {
        if (ioctl(vcpu, KVM_RUN, 0) != 0) {
            if (errno == EINTR) continue;
            die("KVM_RUN");
        }
        exits++;
        switch (run->exit_reason) {
        case KVM_EXIT_IO: {
            uint8_t *data = (uint8_t *)run + run->io.data_offset;
            if (run->io.direction == KVM_EXIT_IO_OUT) {
                if (run->io.port == EXIT_PORT) {
                    uint32_t value = 0;
                    memcpy(&value, data, run->io.size);
                    status = value <= 63 ? (int)value : GUEST_ERROR;
                }
            } else {
                memset(data, 0xFF, (size_t)run->io.size * run->io.count);
            }
            break;
        }
        case KVM_EXIT_MMIO:
            if (!run->mmio.is_write) memset(run->mmio.data, 0xFF, sizeof run->mmio.data);
            break;
        default:
            fprintf(stderr, "kvm-baseline: unexpected exit reason %u\n", run->exit_reason);
            status = GUEST_ERROR;
        }
    }
    uint64_t elapsed = now_ns() - started;
    if (getenv("KVM_BASELINE_STATS"))
        fprintf(stderr, "kvm-baseline: %llu exits, %.0f ns per exit\n",
                (unsigned long long)exits, (double)elapsed / (double)exits);
    return status;
}
