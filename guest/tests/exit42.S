/* Exits at once with status 42 through an 8-bit OUT to the exit port. */
#include "../abi.h"
    .intel_syntax noprefix
    .section .text.entry, "ax"
    .global _start
_start:
    mov al, 42
    out EXIT_PORT, al
1:  hlt                                 /* not reached if the exit port works */
    jmp 1b
