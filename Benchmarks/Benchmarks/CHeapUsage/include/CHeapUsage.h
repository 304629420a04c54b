#ifndef C_HEAP_USAGE_H
#define C_HEAP_USAGE_H

#include <stddef.h>
#include <stdint.h>

/// Bytes of heap in use according to glibc's mallinfo2 (arena plus mmap-backed blocks).
size_t heap_bytes_in_use(void);

/// CPU time consumed by the calling thread, in nanoseconds (CLOCK_THREAD_CPUTIME_ID): unlike
/// wall time, it does not grow while other jobs on the shared machine hold the core.
uint64_t thread_cpu_nanoseconds(void);

#endif
