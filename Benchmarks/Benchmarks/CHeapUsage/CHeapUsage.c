// mallinfo2 is not visible through Swift's Glibc module, and the deprecated mallinfo
// would warn, so the benchmarks read heap usage through this C function; the thread's CPU
// clock is read here too, the same way the C++ floor program reads it.
#include "CHeapUsage.h"

#include <malloc.h>
#include <time.h>

size_t heap_bytes_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}

uint64_t thread_cpu_nanoseconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
    return (uint64_t)now.tv_sec * 1000000000u + (uint64_t)now.tv_nsec;
}
