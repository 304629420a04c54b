/* Finds the first RAM entry at or above 4 GiB in the boot-information table, writes an
 * address-dependent qword every 1 MiB across it (its first and last qwords included),
 * then reads them all back. Exits 0, 1 if the table's magic is wrong, 2 if there is no
 * RAM above 4 GiB (run with --memory 5G or more), 3 on a mismatch. */
#include "../abi.h"
    .intel_syntax noprefix
    .set STRIDE, 0x100000
    .set SALT, 0x5DEECE66DA5A5A5A
    .section .text.entry, "ax"
    .global _start
_start:
    mov bl, 1
    cmp dword ptr [rdi + BI_MAGIC], BOOTINFO_MAGIC
    jne done
    mov bl, 2
    movzx ecx, word ptr [rdi + BI_COUNT]
    movzx eax, word ptr [rdi + BI_HEADER_SIZE]
    lea rsi, [rdi + rax]
    movzx r8d, word ptr [rdi + BI_ENTRY_SIZE]
    mov r9, 0x100000000
find:
    test ecx, ecx
    jz done
    cmp word ptr [rsi + BE_KIND], KIND_RAM
    jne 1f
    cmp [rsi + BE_BASE], r9
    jae found
1:  add rsi, r8
    dec ecx
    jmp find

found:
    mov r12, [rsi + BE_BASE]                    /* first qword */
    mov r13, r12
    add r13, [rsi + BE_SIZE]
    sub r13, 8                                  /* last qword */
    mov r14, SALT
    /* Write pass: every STRIDE from the base, then the last qword. */
    mov rdx, r12
1:  mov rax, rdx
    xor rax, r14
    mov [rdx], rax
    add rdx, STRIDE
    cmp rdx, r13
    jb 1b
    mov rax, r13
    xor rax, r14
    mov [r13], rax
    /* Read pass. */
    mov bl, 3
    mov rdx, r12
2:  mov rax, rdx
    xor rax, r14
    cmp [rdx], rax
    jne done
    add rdx, STRIDE
    cmp rdx, r13
    jb 2b
    mov rax, r13
    xor rax, r14
    cmp [r13], rax
    jne done
    xor ebx, ebx
done:
    mov al, bl
    out EXIT_PORT, al
3:  hlt
    jmp 3b
