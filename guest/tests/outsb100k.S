/* Fills 100,000 bytes with byte i = i mod 256, sends them to COM1's THR with one
 * `rep outsb` (no LSR polling), then exits 0. */
#include "../abi.h"
    .intel_syntax noprefix
    .set BUFFER, 0x200000               /* free RAM past the image */
    .set COUNT, 100000
    .section .text.entry, "ax"
    .global _start
_start:
    mov edi, BUFFER
    xor eax, eax
    mov ecx, COUNT
    cld
1:  stosb
    inc eax
    dec ecx
    jnz 1b
    mov esi, BUFFER
    mov ecx, COUNT
    mov dx, COM1_BASE + UART_THR
    rep outsb
    xor eax, eax
    out EXIT_PORT, al
2:  hlt
    jmp 2b
