/* Prints the numbered lines "00001\n" to "01500\n" over COM1 at a steady pace (a fixed
 * delay loop between lines), then exits 0: the snapshot tests' guest. Its output is a
 * function of how far it got, so a run that is snapshotted, killed and restored must
 * print exactly what an uninterrupted run prints. */
#include "../abi.h"
#define LINES 1500
#define DELAY 2000 /* loop iterations between lines: a few ms on this host */
    .intel_syntax noprefix
    .section .text.entry, "ax"
    .global _start
_start:
    mov r12d, LINES
line:
    lea rsi, [rip + digits]
    mov ecx, 6
    mov dx, COM1_BASE + UART_THR
    rep outsb
    /* Increment the five ASCII digits with carry. */
    mov ebx, 4
carry:
    lea rdi, [rip + digits]
    inc byte ptr [rdi + rbx]
    cmp byte ptr [rdi + rbx], '9'
    jbe counted
    mov byte ptr [rdi + rbx], '0'
    dec ebx
    jns carry
counted:
    mov ecx, DELAY
1:  dec ecx
    jnz 1b
    dec r12d
    jnz line
    xor eax, eax
    out EXIT_PORT, al
2:  hlt
    jmp 2b

    .data
digits:
    .ascii "00001\n"
