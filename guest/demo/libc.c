/* GCC may emit calls to these even in freestanding code. */
#include <stddef.h>

void *memset(void *dest, int value, size_t count) {
    unsigned char *d = dest;
    while (count-- > 0) {
        *d++ = (unsigned char)value;
    }
    return dest;
}

void *memcpy(void *restrict dest, const void *restrict src, size_t count) {
    unsigned char *d = dest;
    const unsigned char *s = src;
    while (count-- > 0) {
        *d++ = *s++;
    }
    return dest;
}
