// mallinfo2 is not visible through Swift's Glibc module, and the deprecated mallinfo
// would warn, so the benchmarks read heap usage through this one C function.
#include "CHeapUsage.h"

#include <malloc.h>

size_t heap_bytes_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return info.uordblks + info.hblkhd;
}
