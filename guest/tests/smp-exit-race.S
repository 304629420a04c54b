/* Starts AP 1; when the AP reports it is ready, the BSP flips the shared `go` flag and at
 * once writes 7 to the exit port, while the AP, spinning on `go`, writes 8. Both OUTs reach
 * minivmm within microseconds of each other: the VM must end with exactly one of the two
 * statuses (7 or 8, whichever minivmm takes first) and no hang. If the AP never reports
 * (e.g. with one vCPU) the BSP spins forever: use --timeout. Needs --cpus 2 or more. */
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
1:  pause
    cmp byte ptr [rip + ready], 0
    je 1b
    mov al, 7
    mov byte ptr [rip + go], 1
    out EXIT_PORT, al
1:  cli
    hlt
    jmp 1b

    .global ap_main
ap_main:
    mov byte ptr [rip + ready], 1
1:  cmp byte ptr [rip + go], 0         /* no pause: react as fast as possible */
    je 1b
    mov al, 8
    out EXIT_PORT, al
1:  cli
    hlt
    jmp 1b

#include "../ap-trampoline.inc"

    .data
ready: .byte 0
go:    .byte 0
