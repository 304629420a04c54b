/* Reads one line from COM1 (polling LSR.DR), up to and including '\n', then writes it
 * back (polling LSR.THRE) and exits 0. A line longer than 4096 bytes: the first 4096
 * are written back and the status is 1. */
#include "../abi.h"
    .intel_syntax noprefix
    .set BUFFER, 0x200000               /* free RAM past the image */
    .set CAPACITY, 4096
    .section .text.entry, "ax"
    .global _start
_start:
    mov edi, BUFFER
    xor ebx, ebx                        /* exit status */
read_byte:
    cmp edi, BUFFER + CAPACITY
    je overflow
    mov dx, COM1_BASE + UART_LSR
1:  in al, dx
    test al, UART_LSR_DR
    jz 1b
    mov dx, COM1_BASE + UART_RBR
    in al, dx
    stosb
    cmp al, '\n'
    jne read_byte
    jmp write_back
overflow:
    mov ebx, 1
write_back:
    mov ecx, edi
    mov esi, BUFFER
    sub ecx, esi
write_byte:
    mov dx, COM1_BASE + UART_LSR
1:  in al, dx
    test al, UART_LSR_THRE
    jz 1b
    mov dx, COM1_BASE + UART_THR
    lodsb
    out dx, al
    dec ecx
    jnz write_byte
    mov eax, ebx
    out EXIT_PORT, al
2:  hlt
    jmp 2b
