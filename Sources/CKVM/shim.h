/*
 * CKVM: the C surface of the KVM API for Swift.
 *
 * The ioctl request numbers are function-like macros (_IO/_IOR/_IOW/_IOWR) that Swift
 * cannot import, and ioctl(2) itself is variadic, so both reach Swift through the
 * `static const` values and `static inline` functions below. Nothing here is mutable
 * global state.
 */
#ifndef CKVM_SHIM_H
#define CKVM_SHIM_H

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

/* ---- Request numbers --------------------------------------------------------------- */

/* System ioctls (on the /dev/kvm descriptor). */
static const unsigned long CKVM_GET_API_VERSION = KVM_GET_API_VERSION;
static const unsigned long CKVM_CREATE_VM = KVM_CREATE_VM;
static const unsigned long CKVM_CHECK_EXTENSION = KVM_CHECK_EXTENSION;
static const unsigned long CKVM_GET_VCPU_MMAP_SIZE = KVM_GET_VCPU_MMAP_SIZE;
static const unsigned long CKVM_GET_SUPPORTED_CPUID = KVM_GET_SUPPORTED_CPUID;

/* VM ioctls. */
static const unsigned long CKVM_SET_USER_MEMORY_REGION = KVM_SET_USER_MEMORY_REGION;
static const unsigned long CKVM_CREATE_VCPU = KVM_CREATE_VCPU;
static const unsigned long CKVM_CREATE_IRQCHIP = KVM_CREATE_IRQCHIP;
static const unsigned long CKVM_CREATE_PIT2 = KVM_CREATE_PIT2;
static const unsigned long CKVM_SET_TSS_ADDR = KVM_SET_TSS_ADDR;
static const unsigned long CKVM_SET_IDENTITY_MAP_ADDR = KVM_SET_IDENTITY_MAP_ADDR;
static const unsigned long CKVM_IRQFD = KVM_IRQFD;
static const unsigned long CKVM_IRQ_LINE = KVM_IRQ_LINE;

/* vCPU ioctls. */
static const unsigned long CKVM_RUN = KVM_RUN;
static const unsigned long CKVM_GET_REGS = KVM_GET_REGS;
static const unsigned long CKVM_SET_REGS = KVM_SET_REGS;
static const unsigned long CKVM_GET_SREGS = KVM_GET_SREGS;
static const unsigned long CKVM_SET_SREGS = KVM_SET_SREGS;
static const unsigned long CKVM_SET_CPUID2 = KVM_SET_CPUID2;

/* State save and restore (snapshots). */
static const unsigned long CKVM_GET_MSR_INDEX_LIST = KVM_GET_MSR_INDEX_LIST;
static const unsigned long CKVM_GET_FPU = KVM_GET_FPU;
static const unsigned long CKVM_SET_FPU = KVM_SET_FPU;
static const unsigned long CKVM_GET_XSAVE = KVM_GET_XSAVE;
static const unsigned long CKVM_GET_XSAVE2 = KVM_GET_XSAVE2;
static const unsigned long CKVM_SET_XSAVE = KVM_SET_XSAVE;
static const unsigned long CKVM_GET_XCRS = KVM_GET_XCRS;
static const unsigned long CKVM_SET_XCRS = KVM_SET_XCRS;
static const unsigned long CKVM_GET_MSRS = KVM_GET_MSRS;
static const unsigned long CKVM_SET_MSRS = KVM_SET_MSRS;
static const unsigned long CKVM_GET_LAPIC = KVM_GET_LAPIC;
static const unsigned long CKVM_SET_LAPIC = KVM_SET_LAPIC;
static const unsigned long CKVM_GET_VCPU_EVENTS = KVM_GET_VCPU_EVENTS;
static const unsigned long CKVM_SET_VCPU_EVENTS = KVM_SET_VCPU_EVENTS;
static const unsigned long CKVM_GET_DEBUGREGS = KVM_GET_DEBUGREGS;
static const unsigned long CKVM_SET_DEBUGREGS = KVM_SET_DEBUGREGS;
static const unsigned long CKVM_GET_MP_STATE = KVM_GET_MP_STATE;
static const unsigned long CKVM_SET_MP_STATE = KVM_SET_MP_STATE;
static const unsigned long CKVM_GET_TSC_KHZ = KVM_GET_TSC_KHZ;
static const unsigned long CKVM_SET_TSC_KHZ = KVM_SET_TSC_KHZ;
static const unsigned long CKVM_GET_IRQCHIP = KVM_GET_IRQCHIP;
static const unsigned long CKVM_SET_IRQCHIP = KVM_SET_IRQCHIP;
static const unsigned long CKVM_GET_PIT2 = KVM_GET_PIT2;
static const unsigned long CKVM_SET_PIT2 = KVM_SET_PIT2;
static const unsigned long CKVM_GET_CLOCK = KVM_GET_CLOCK;
static const unsigned long CKVM_SET_CLOCK = KVM_SET_CLOCK;
static const unsigned long CKVM_GET_DIRTY_LOG = KVM_GET_DIRTY_LOG;

/* Other constants Swift cannot see through macros. */
static const int CKVM_API_VERSION = KVM_API_VERSION;
static const int CKVM_EXIT_IO_IN = KVM_EXIT_IO_IN;
static const int CKVM_EXIT_IO_OUT = KVM_EXIT_IO_OUT;
static const uint32_t CKVM_MEM_LOG_DIRTY_PAGES = KVM_MEM_LOG_DIRTY_PAGES;
static const uint32_t CKVM_MEM_READONLY = KVM_MEM_READONLY;
static const uint32_t CKVM_IRQFD_FLAG_DEASSIGN = KVM_IRQFD_FLAG_DEASSIGN;
static const uint32_t CKVM_PIT_SPEAKER_DUMMY = KVM_PIT_SPEAKER_DUMMY;
static const uint32_t CKVM_VCPUEVENT_VALID_NMI_PENDING = KVM_VCPUEVENT_VALID_NMI_PENDING;
static const uint32_t CKVM_VCPUEVENT_VALID_SIPI_VECTOR = KVM_VCPUEVENT_VALID_SIPI_VECTOR;
static const uint32_t CKVM_CLOCK_REALTIME = KVM_CLOCK_REALTIME;
static const uint32_t CKVM_IRQCHIP_PIC_MASTER = KVM_IRQCHIP_PIC_MASTER;
static const uint32_t CKVM_IRQCHIP_PIC_SLAVE = KVM_IRQCHIP_PIC_SLAVE;
static const uint32_t CKVM_IRQCHIP_IOAPIC = KVM_IRQCHIP_IOAPIC;
static const int CKVM_CAP_XSAVE2 = KVM_CAP_XSAVE2;

/* ---- ioctl without varargs ----------------------------------------------------------- */

/** ioctl(fd, request, 0): requests that take no argument. */
static inline int ckvm_ioctl_none(int fd, unsigned long request) {
    return ioctl(fd, request, 0);
}

/** ioctl(fd, request, value): requests whose argument is an integer, not a pointer. */
static inline int ckvm_ioctl_value(int fd, unsigned long request, unsigned long value) {
    return ioctl(fd, request, value);
}

/** ioctl(fd, request, pointer): requests whose argument points to a structure. */
static inline int ckvm_ioctl_pointer(int fd, unsigned long request, void *pointer) {
    return ioctl(fd, request, pointer);
}

/** open(2) with a fixed mode argument, since open is variadic too. */
static inline int ckvm_open(const char *path, int flags) {
    return open(path, flags, 0);
}

/** The calling thread's errno. */
static inline int ckvm_errno(void) {
    return errno;
}

/* ---- The kvm_run page ---------------------------------------------------------------- */

/**
 * Requests that the next (or the current) KVM_RUN returns with EINTR. Written with an
 * atomic store because another thread (a watchdog) sets it while the vCPU thread runs.
 */
static inline void ckvm_run_set_immediate_exit(struct kvm_run *run, uint8_t value) {
    __atomic_store_n(&run->immediate_exit, value, __ATOMIC_SEQ_CST);
}

/** Reads immediate_exit atomically. */
static inline uint8_t ckvm_run_immediate_exit(const struct kvm_run *run) {
    return __atomic_load_n(&run->immediate_exit, __ATOMIC_SEQ_CST);
}

/** The 8 inline data bytes of an MMIO exit. */
static inline uint8_t *ckvm_run_mmio_data(struct kvm_run *run) {
    return run->mmio.data;
}

/** The extra words of an internal-error exit (valid up to `internal.ndata`). */
static inline const uint64_t *ckvm_run_internal_data(const struct kvm_run *run) {
    return run->internal.data;
}

/** The extra words of a system-event exit (valid up to `system_event.ndata`). */
static inline const uint64_t *ckvm_run_system_event_data(const struct kvm_run *run) {
    return run->system_event.data;
}

/** Number of words `internal.data` can hold. */
static const uint32_t CKVM_RUN_INTERNAL_DATA_CAPACITY =
    sizeof(((struct kvm_run *)0)->internal.data) / sizeof(uint64_t);

/** Number of words `system_event.data` can hold. */
static const uint32_t CKVM_RUN_SYSTEM_EVENT_DATA_CAPACITY =
    sizeof(((struct kvm_run *)0)->system_event.data) / sizeof(uint64_t);

/* ---- Kicking a vCPU thread ----------------------------------------------------------- */

/** The signal used to kick a vCPU thread out of KVM_RUN: the first real-time signal. */
static inline int ckvm_kick_signal(void) {
    return SIGRTMIN;
}

/* The kick signal only has to interrupt the ioctl; the handler does nothing. */
static inline void ckvm_kick_handler(int signal_number) {
    (void)signal_number;
}

/**
 * Installs the no-op kick handler for `signal_number` without SA_RESTART, so a blocking
 * KVM_RUN returns EINTR instead of being restarted, and unblocks the signal for the
 * calling thread. Returns 0 or -1 with errno set.
 */
static inline int ckvm_install_kick_handler(int signal_number) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = ckvm_kick_handler;
    sigemptyset(&action.sa_mask);
    action.sa_flags = 0;
    return sigaction(signal_number, &action, NULL);
}

/** Unblocks `signal_number` for the calling thread. Returns 0 or an error number. */
static inline int ckvm_unblock_signal(int signal_number) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, signal_number);
    return pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/** pthread_kill for a thread id stored as an integer. Returns 0 or an error number. */
static inline int ckvm_pthread_kill(unsigned long thread, int signal_number) {
    return pthread_kill((pthread_t)thread, signal_number);
}

/** pthread_self as an integer. */
static inline unsigned long ckvm_pthread_self(void) {
    return (unsigned long)pthread_self();
}

#endif /* CKVM_SHIM_H */
