/* Reads unused ports with 8-, 16- and 32-bit IN and unmapped MMIO in the 32-bit gap with
 * 8-, 16-, 32- and 64-bit loads; every read must return all ones. Exits 0, or the first
 * failing read: 1 in al (0x2F0), 2 in ax (0x2F2), 3 in eax (0x2F4), 4 byte load
 * (0xD0000000), 5 word load (0xD0000010), 6 dword load (0xD0000020), 7 qword load
 * (0xD0000040). */
#include "../abi.h"
    .intel_syntax noprefix
    .set UNUSED_MMIO, 0xD0000000
    .section .text.entry, "ax"
    .global _start
_start:
    mov bl, 1
    xor eax, eax
    mov dx, 0x2F0
    in al, dx
    cmp eax, 0xFF
    jne done

    mov bl, 2
    xor eax, eax
    mov dx, 0x2F2
    in ax, dx
    cmp eax, 0xFFFF
    jne done

    mov bl, 3
    xor eax, eax
    mov dx, 0x2F4
    in eax, dx
    cmp eax, 0xFFFFFFFF
    jne done

    mov esi, UNUSED_MMIO                /* zero-extended: a disp32 would sign-extend */
    mov bl, 4
    movzx eax, byte ptr [rsi]
    cmp eax, 0xFF
    jne done

    mov bl, 5
    movzx eax, word ptr [rsi + 0x10]
    cmp eax, 0xFFFF
    jne done

    mov bl, 6
    xor eax, eax
    mov eax, dword ptr [rsi + 0x20]
    cmp eax, 0xFFFFFFFF
    jne done

    mov bl, 7
    xor eax, eax
    mov rax, qword ptr [rsi + 0x40]
    cmp rax, -1
    jne done

    xor ebx, ebx
done:
    mov al, bl
    out EXIT_PORT, al
1:  hlt
    jmp 1b
