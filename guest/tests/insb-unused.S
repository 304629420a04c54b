/* `rep insb` of 10,000 bytes from the unused port 0x2F0 into a zeroed buffer, followed by
 * a guard byte. Exits 0 if every byte reads 0xFF and the guard is intact, 1 if a byte is
 * not 0xFF, 2 if the guard byte changed, 3 if RCX is not 0 afterwards. */
#include "../abi.h"
    .intel_syntax noprefix
    .set BUFFER, 0x200000               /* free RAM past the image */
    .set COUNT, 10000
    .set GUARD, 0x5A
    .set UNUSED_PORT, 0x2F0
    .section .text.entry, "ax"
    .global _start
_start:
    cld
    mov edi, BUFFER
    mov ecx, COUNT
    xor eax, eax
    rep stosb
    mov byte ptr [BUFFER + COUNT], GUARD

    mov edi, BUFFER
    mov ecx, COUNT
    mov dx, UNUSED_PORT
    rep insb
    mov bl, 3
    test ecx, ecx
    jnz done

    mov esi, BUFFER
    mov ecx, COUNT
    mov bl, 1
1:  lodsb
    cmp al, 0xFF
    jne done
    dec ecx
    jnz 1b
    mov bl, 2
    cmp byte ptr [BUFFER + COUNT], GUARD
    jne done
    xor ebx, ebx
done:
    mov al, bl
    out EXIT_PORT, al
2:  hlt
    jmp 2b
