/* Prints one line over COM1, polling LSR.THRE before each byte, then exits 0. */
#include "../abi.h"
    .intel_syntax noprefix
    .section .text.entry, "ax"
    .global _start
_start:
    lea rsi, [rip + message]
    mov ecx, message_end - message
next_byte:
    mov dx, COM1_BASE + UART_LSR
1:  in al, dx
    test al, UART_LSR_THRE
    jz 1b
    mov dx, COM1_BASE + UART_THR
    lodsb
    out dx, al
    dec ecx
    jnz next_byte
    xor eax, eax
    out EXIT_PORT, al
2:  hlt
    jmp 2b

message:
    .ascii "Hello from uart-hello over COM1!\n"
message_end:
