/* The snapshot benchmark's guest (Benchmarks/snapshot-times.py). Prints "ready\n", then
 * loops: poll COM1's LSR.DR, read the byte, and
 *   'w': write one qword (a count of 'w's so far) into each of N consecutive 4 KiB pages
 *        from 4 MiB up, N = 1% of all RAM's pages (the RAM entries of the boot-information
 *        table, summed, / 409600: 2621 for 1 GiB), then print "done\n";
 *   'q': exit 0;
 *   any other byte: print "ok\n".
 * So a snapshot taken while it polls, restored with a byte waiting on stdin, prints "ok\n"
 * within a few instructions of its first one after the restore. It writes no other RAM
 * (no stack, no variables), so a diff after one 'w' holds the N pages and little else.
 * About 4 instructions per page (~3 µs each when CPL0 is emulated): ~30 ms for 1 GiB.
 * Needs RAM up to 4 MiB + N pages (any --memory >= 8M). */
#include "../abi.h"
#define FIRST_PAGE 0x400000
    .intel_syntax noprefix
    .section .text.entry, "ax"
    .global _start
_start:
    /* r13 = total RAM bytes of the table's RAM entries. */
    xor r13d, r13d
    movzx ecx, word ptr [rdi + BI_COUNT]
    lea rsi, [rdi + BOOTINFO_HEADER_SIZE]
    test ecx, ecx
    jz counted
entry:
    cmp word ptr [rsi + BE_KIND], KIND_RAM
    jne next
    add r13, [rsi + BE_SIZE]
next:
    add rsi, BOOTINFO_ENTRY_SIZE
    dec ecx
    jnz entry
counted:
    /* r13 = N = bytes / (4096 * 100); r14 = the value written, +1 per 'w'. */
    mov rax, r13
    xor edx, edx
    mov ecx, 409600
    div rcx
    mov r13, rax
    xor r14d, r14d
    lea rsi, [rip + ready]
    mov ecx, 6
    mov dx, COM1_BASE + UART_THR
    rep outsb
wait:
    mov dx, COM1_BASE + UART_LSR
    in al, dx
    test al, UART_LSR_DR
    jz wait
    mov dx, COM1_BASE + UART_RBR
    in al, dx
    cmp al, 'w'
    je write
    cmp al, 'q'
    je quit
    lea rsi, [rip + ok]
    mov ecx, 3
    rep outsb
    jmp wait
write:
    inc r14
    mov rax, r14
    mov edi, FIRST_PAGE
    mov rcx, r13
    test rcx, rcx
    jz written
1:  mov [rdi], rax
    add rdi, 4096
    dec rcx
    jnz 1b
written:
    lea rsi, [rip + done]
    mov ecx, 5
    mov dx, COM1_BASE + UART_THR
    rep outsb
    jmp wait
quit:
    xor eax, eax
    out EXIT_PORT, al
2:  hlt
    jmp 2b

ready:
    .ascii "ready\n"
ok:
    .ascii "ok\n"
done:
    .ascii "done\n"
