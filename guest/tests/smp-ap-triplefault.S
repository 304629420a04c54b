/* Starts AP 1 with INIT-SIPI-SIPI; the AP reaches long mode, loads an IDT with limit 0 and
 * executes ud2, so it triple-faults (KVM_EXIT_SHUTDOWN on vCPU 1, RIP at ap_main's ud2)
 * while the BSP halts with interrupts off. minivmm must report vCPU 1's crash and exit 76.
 * Needs --cpus 2 or more (with one vCPU nothing answers the SIPI: it then halts forever,
 * so use --timeout). */
#include "../abi.h"
    .intel_syntax noprefix
    .section .text.entry, "ax"
    .global _start
_start:
    mov eax, LAPIC_BASE + LAPIC_SVR
    mov dword ptr [rax], LAPIC_SVR_ENABLE | 0xFF
    call ap_trampoline_install
    mov edi, 1
    call ap_start
1:  cli
    hlt
    jmp 1b

    .global ap_main
ap_main:
    lidt [rip + empty_idtr]
    ud2                                 /* #UD, #GP, #DF find no gate: shutdown */
1:  hlt
    jmp 1b

    .balign 8
empty_idtr:
    .word 0                             /* limit */
    .quad 0                             /* base */

#include "../ap-trampoline.inc"
