/* Spins forever without exiting to the monitor: only --timeout stops it (124). */
    .intel_syntax noprefix
    .section .text.entry, "ax"
    .global _start
_start:
1:  jmp 1b
