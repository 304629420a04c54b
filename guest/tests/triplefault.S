/* Loads an IDT with limit 0 and executes ud2: #UD has no gate, nor have the #GP and #DF
 * that follow, so the CPU shuts down (a triple fault: KVM_EXIT_SHUTDOWN; minivmm exits
 * 76). ud2 rather than int3: on AMD hosts KVM reports the int3 variant as an emulation
 * failure (KVM_EXIT_INTERNAL_ERROR) instead of a shutdown. */
    .intel_syntax noprefix
    .section .text.entry, "ax"
    .global _start
_start:
    lidt [rip + empty_idtr]
    ud2
1:  hlt
    jmp 1b

    .balign 8
empty_idtr:
    .word 0                             /* limit */
    .quad 0                             /* base */
