#ifndef C_HEAP_USAGE_H
#define C_HEAP_USAGE_H

#include <stddef.h>

/// Bytes of heap in use according to glibc's mallinfo2 (arena plus mmap-backed blocks).
size_t heap_bytes_in_use(void);

#endif
