/* The SMP throughput workload: the BSP starts AP 1, then both write 200,000 single bytes to
 * port 0x80 (one VM exit each, no device: ignored), each on its own vCPU; when both are
 * done the BSP exits 0. With --cpus 1 the BSP alone does its 200,000 writes. Run it with
 * --cpus 1 and --cpus 2 to compare aggregate exits per second (docs/performance.md). */
#include "../abi.h"
    .intel_syntax noprefix
    .set WRITES, 200000
    .section .text.entry, "ax"
    .global _start
_start:
    mov rbx, rdi                                /* the table */
    mov eax, LAPIC_BASE + LAPIC_SVR
    mov dword ptr [rax], LAPIC_SVR_ENABLE | 0xFF
    call ap_trampoline_install
    mov r15d, 1                                 /* CPUs that will write */
    movzx r12d, word ptr [rbx + BI_COUNT]       /* entries left */
    movzx eax, word ptr [rbx + BI_HEADER_SIZE]
    lea r13, [rbx + rax]                        /* current entry */
    movzx r14d, word ptr [rbx + BI_ENTRY_SIZE]
next_entry:
    test r12d, r12d
    jz writes
    cmp word ptr [r13 + BE_KIND], KIND_CPU
    jne skip
    cmp word ptr [r13 + BE_INSTANCE], 1         /* only AP 1 */
    jne skip
    mov edi, 1
    call ap_start
    inc r15d
skip:
    add r13, r14
    dec r12d
    jmp next_entry
writes:
    call write_loop
wait:
    pause
    cmp dword ptr [done], r15d                  /* every writer finished? */
    jne wait
    xor eax, eax
    out EXIT_PORT, al
1:  hlt
    jmp 1b

write_loop:
    mov ecx, WRITES
    xor eax, eax
2:  out 0x80, al
    dec ecx
    jnz 2b
    lock inc dword ptr [done]
    ret

    .global ap_main
ap_main:
    call write_loop
3:  cli
    hlt
    jmp 3b

    .data
    .balign 4
done:
    .long 0

#include "../ap-trampoline.inc"
