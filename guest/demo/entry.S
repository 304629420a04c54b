/*
 * Demo guest entry point. minivmm enters here in 64-bit long mode with interrupts off,
 * RSP = 0x80000 and RDI = the boot-information table (docs/guest-abi.md).
 */
    .intel_syntax noprefix
    .section .text.entry, "ax"
    .global _start
_start:
    mov rbx, rdi                        /* keep the table address across the bss clear */
    /* The flat image does not carry .bss: RAM is zero at boot, but do not rely on it. */
    lea rdi, [rip + __bss_start]
    lea rcx, [rip + __bss_end]
    sub rcx, rdi
    xor eax, eax
    cld
    rep stosb
    mov rdi, rbx
    call guest_main                     /* returns the exit status */
    out 0xF4, al
1:  hlt                                 /* not reached: the exit port ends the VM */
    jmp 1b
