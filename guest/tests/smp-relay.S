/* The SMP snapshot tests' guest: every CPU the boot-information table lists takes part in
 * printing the numbered lines "00001 cpu 0\n" to "06000 cpu K\n" over COM1, in turn: line n
 * is printed by APIC ID (n - 1) mod N (N = the number of CPU entries, 1 without any; APIC
 * IDs 0 to N - 1 as the ABI gives them, N at most 10 for the one-digit ID). The
 * CPU whose turn it is prints its line, advances the shared turn and sends the next CPU a
 * fixed IPI (vector 0x60); the others wait halted (`sti; hlt`). So the output is the same
 * whatever the timing, and every CPU runs, and halts, all through the run. The CPU that
 * prints the last line exits 0.
 * The BSP masks the 8259 and its LINT0, loads a one-gate IDT at 0x9000 and starts every AP
 * (INIT-SIPI-SIPI, guest/ap-trampoline.inc); each AP loads the same IDT, enables its local
 * APIC and reports ready; the BSP starts the relay once all have. A CPU exception or a stray
 * interrupt finds no gate: a triple fault, status 76. */
#include "../abi.h"
    .intel_syntax noprefix
    .set LINES, 6000
    .set VECTOR, 0x60
    .set IDT, 0x9000                            /* guest-owned low RAM, after the trampoline */
    .section .text.entry, "ax"
    .global _start
_start:
    mov rbx, rdi                                /* the table */
    mov al, 0xFF
    out PIC1_DATA, al
    out PIC2_DATA, al
    mov edi, IDT
    xor eax, eax
    mov ecx, (VECTOR + 1) * 2                   /* (VECTOR + 1) gates of 16 bytes */
    cld
    rep stosq
    lea rax, [rip + ipi_interrupt]
    mov edi, IDT + VECTOR * 16
    mov [rdi], ax
    mov word ptr [rdi + 2], 0x08                /* minivmm's 64-bit code segment */
    mov word ptr [rdi + 4], 0x8E00              /* present, DPL 0, interrupt gate */
    shr rax, 16
    mov [rdi + 6], ax
    shr rax, 16
    mov [rdi + 8], eax
    call local_setup
    mov eax, LAPIC_BASE + LAPIC_LVT_LINT0
    mov dword ptr [rax], LAPIC_LVT_MASKED
    call ap_trampoline_install

    xor r13d, r13d                              /* CPU entries */
    movzx r12d, word ptr [rbx + BI_COUNT]       /* entries left */
    movzx eax, word ptr [rbx + BI_HEADER_SIZE]
    lea r14, [rbx + rax]                        /* current entry */
    movzx r15d, word ptr [rbx + BI_ENTRY_SIZE]
next_entry:
    test r12d, r12d
    jz started
    cmp word ptr [r14 + BE_KIND], KIND_CPU
    jne skip
    inc r13d
    movzx edi, word ptr [r14 + BE_INSTANCE]
    test edi, edi
    jz skip                                     /* APIC ID 0: this CPU */
    call ap_start
skip:
    add r14, r15
    dec r12d
    jmp next_entry
started:
    mov eax, 1
    test r13d, r13d
    cmovz r13d, eax                             /* no CPU entries: one CPU */
    mov [rip + cpus], r13d
    lea eax, [r13 - 1]
1:  pause
    cmp [rip + ready], eax                      /* every AP ready for its IPI? */
    jne 1b
    xor r12d, r12d                              /* APIC ID 0 */
    jmp relay

    .global ap_main
ap_main:                                        /* edi = APIC ID */
    mov r12d, edi
    call local_setup
    lock inc dword ptr [rip + ready]
2:  mov r13d, [rip + cpus]                      /* set by the BSP before it waits */
    test r13d, r13d
    jnz relay
    pause
    jmp 2b

/* This CPU's IDT and local APIC. */
local_setup:
    lidt [rip + idtr]
    mov eax, LAPIC_BASE + LAPIC_SVR
    mov dword ptr [rax], LAPIC_SVR_ENABLE | 0xFF
    ret

/* r12d = this CPU's APIC ID, r13d = the number of CPUs. */
relay:
    cli
wait:
    mov eax, [rip + turn]
    cmp eax, LINES
    jae finished
    xor edx, edx
    div r13d
    cmp edx, r12d
    je mine
    sti
    hlt
    cli
    jmp wait
mine:
    lea rdi, [rip + line]
    lea eax, [r12 + '0']
    mov [rdi + 10], al
    mov rsi, rdi
    mov ecx, line_end - line
    mov dx, COM1_BASE + UART_THR
    rep outsb
    mov ebx, 4                                  /* the five digits + 1, with carry */
3:  inc byte ptr [rdi + rbx]
    cmp byte ptr [rdi + rbx], '9'
    jbe 4f
    mov byte ptr [rdi + rbx], '0'
    dec ebx
    jns 3b
4:  mov eax, [rip + turn]
    inc eax
    mov [rip + turn], eax
    cmp eax, LINES
    jae last
    lea eax, [r12 + 1]                          /* the next CPU */
    cmp eax, r13d
    jb 5f
    xor eax, eax
5:  cmp eax, r12d
    je wait                                     /* one CPU: no IPI */
    shl eax, LAPIC_ICR_DEST_SHIFT
    mov edx, LAPIC_BASE + LAPIC_ICR_HIGH
    mov [rdx], eax
    mov edx, LAPIC_BASE + LAPIC_ICR_LOW
    mov dword ptr [rdx], LAPIC_ICR_FIXED | VECTOR
    jmp wait
last:
    xor eax, eax
    out EXIT_PORT, al
finished:
    cli
    hlt
    jmp finished

ipi_interrupt:
    push rax
    mov eax, LAPIC_BASE + LAPIC_EOI
    mov dword ptr [rax], 0
    pop rax
    iretq

    .data
    .balign 8
idtr:
    .word (VECTOR + 1) * 16 - 1
    .quad IDT
    .balign 4
turn:
    .long 0
cpus:
    .long 0
ready:
    .long 0
line:
    .ascii "00001 cpu 0\n"
line_end:

    .text
#include "../ap-trampoline.inc"
