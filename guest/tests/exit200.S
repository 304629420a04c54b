/* Writes 200 to the exit port: more than 63, so minivmm reports a guest error (76). */
#include "../abi.h"
    .intel_syntax noprefix
    .section .text.entry, "ax"
    .global _start
_start:
    mov al, 200
    out EXIT_PORT, al
1:  hlt
    jmp 1b
