/* Starts every AP the boot-information table lists (CPU entries with an APIC ID other than
 * 0); each AP reaches long mode and spins, and so does the BSP, all without VM exits. Only
 * --timeout stops it (124). Works with any --cpus (with one vCPU it is just spin.bin). */
#include "../abi.h"
    .intel_syntax noprefix
    .section .text.entry, "ax"
    .global _start
_start:
    mov rbx, rdi                                /* the table */
    mov eax, LAPIC_BASE + LAPIC_SVR
    mov dword ptr [rax], LAPIC_SVR_ENABLE | 0xFF
    call ap_trampoline_install
    movzx r12d, word ptr [rbx + BI_COUNT]       /* entries left */
    movzx eax, word ptr [rbx + BI_HEADER_SIZE]
    lea r13, [rbx + rax]                        /* current entry */
    movzx r14d, word ptr [rbx + BI_ENTRY_SIZE]
next_entry:
    test r12d, r12d
    jz spin
    cmp word ptr [r13 + BE_KIND], KIND_CPU
    jne skip
    movzx edi, word ptr [r13 + BE_INSTANCE]
    test edi, edi
    jz skip                                     /* APIC ID 0: this CPU */
    call ap_start
skip:
    add r13, r14
    dec r12d
    jmp next_entry
spin:
    jmp spin

    .global ap_main
ap_main:
1:  jmp 1b

#include "../ap-trampoline.inc"
