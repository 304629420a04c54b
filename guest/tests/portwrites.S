/* 200,000 single-byte OUTs to port 0x80 (one VM exit each), then exits 0: the workload
 * of the per-exit cost benchmark. Port 0x80 has no device, so each write is ignored. */
#include "../abi.h"
    .intel_syntax noprefix
    .set WRITES, 200000
    .section .text.entry, "ax"
    .global _start
_start:
    mov ecx, WRITES
    xor eax, eax
1:  out 0x80, al
    dec ecx
    jnz 1b
    xor eax, eax
    out EXIT_PORT, al
2:  hlt
    jmp 2b
