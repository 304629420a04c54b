/* For every RAM entry of the boot-information table: writes the last 16 bytes as two
 * qwords, then the very last byte alone, and reads them back. Exits 0, 1 if the table's
 * magic is wrong, 2 if it lists no RAM, or 10 + i if RAM entry i (0 = first RAM entry)
 * reads back wrong. */
#include "../abi.h"
    .intel_syntax noprefix
    .set PATTERN_A, 0x0123456789ABCDEF
    .set PATTERN_B, 0xFEDCBA9876543210
    .section .text.entry, "ax"
    .global _start
_start:
    mov bl, 1
    cmp dword ptr [rdi + BI_MAGIC], BOOTINFO_MAGIC
    jne done
    movzx ecx, word ptr [rdi + BI_COUNT]        /* entries left */
    movzx eax, word ptr [rdi + BI_HEADER_SIZE]
    lea rsi, [rdi + rax]                        /* current entry */
    movzx r8d, word ptr [rdi + BI_ENTRY_SIZE]
    mov bl, 10                                  /* status for the current RAM entry */
next_entry:
    test ecx, ecx
    jz all_entries
    cmp word ptr [rsi + BE_KIND], KIND_RAM
    jne skip
    mov rdx, [rsi + BE_BASE]
    add rdx, [rsi + BE_SIZE]                    /* rdx = one past the last byte */
    mov r9, PATTERN_A
    mov r10, PATTERN_B
    mov [rdx - 16], r9
    mov [rdx - 8], r10
    cmp [rdx - 16], r9
    jne done
    cmp [rdx - 8], r10
    jne done
    mov byte ptr [rdx - 1], 0xA5
    cmp byte ptr [rdx - 1], 0xA5
    jne done
    mov rax, 0x00FFFFFFFFFFFFFF
    and r10, rax
    mov rax, 0xA500000000000000
    or r10, rax                                 /* PATTERN_B with its top byte 0xA5 */
    cmp [rdx - 8], r10
    jne done
    inc bl
skip:
    add rsi, r8
    dec ecx
    jmp next_entry
all_entries:
    cmp bl, 10
    mov bl, 2
    je done
    xor ebx, ebx
done:
    mov al, bl
    out EXIT_PORT, al
1:  hlt
    jmp 1b
