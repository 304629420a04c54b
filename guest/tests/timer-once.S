/* The snapshot tests' armed-timer guest. Finds timer #0 and the IOAPIC in the
 * boot-information table, routes the timer's GSI to vector 0x40 (fixed, APIC ID 0, edge,
 * active high), arms DELAY_US = 300000, prints "timer armed\n" and waits with `sti; hlt`
 * for the interrupt. Then it checks STATUS (FIRED set, ARMED clear), prints
 * "fired, count N\n" (N = COUNT, decimal), and for a further 20,000 reads of COUNT (one MMIO
 * exit each, interrupts enabled) checks that the timer does not fire again: COUNT stays N
 * and no second interrupt arrives. Exits 0.
 * Statuses: 1 no table, or no timer #0 or IOAPIC entry; 2 STATUS wrong after the interrupt;
 * 3 the timer fired again (or a second interrupt came) after it was reported. A CPU
 * exception or a stray interrupt finds no gate: a triple fault, status 76. The 20,000 reads
 * take about 0.2 s on the development host, long enough to see a stale expiry of the same
 * arming (e.g. one re-armed with the full delay at restore). */
#include "../abi.h"
    .intel_syntax noprefix
    .set VECTOR, 0x40
    .set IDT, 0x9000                            /* guest-owned low RAM */
    .set DELAY, 300000
    .set SETTLE_READS, 20000
    .section .text.entry, "ax"
    .global _start
_start:
    mov rbx, rdi                                /* the table */
    cmp dword ptr [rbx + BI_MAGIC], BOOTINFO_MAGIC
    jne no_entry
    mov edi, KIND_IOAPIC
    call find_entry
    mov r14, [rax + BE_BASE]                    /* IOAPIC */
    mov edi, KIND_TIMER
    call find_entry
    mov r12, [rax + BE_BASE]                    /* timer #0 */
    mov r13d, [rax + BE_GSI]

    /* Interrupts: the 8259 masked, LINT0 masked, one IDT gate, the local APIC enabled. */
    mov al, 0xFF
    out PIC1_DATA, al
    out PIC2_DATA, al
    mov edi, IDT
    xor eax, eax
    mov ecx, (VECTOR + 1) * 2                   /* (VECTOR + 1) gates of 16 bytes */
    cld
    rep stosq
    lea rax, [rip + timer_interrupt]
    mov edi, IDT + VECTOR * 16
    mov [rdi], ax
    mov word ptr [rdi + 2], 0x08                /* minivmm's 64-bit code segment */
    mov word ptr [rdi + 4], 0x8E00              /* present, DPL 0, interrupt gate */
    shr rax, 16
    mov [rdi + 6], ax
    shr rax, 16
    mov [rdi + 8], eax
    lidt [rip + idtr]
    mov eax, LAPIC_BASE + LAPIC_LVT_LINT0
    mov dword ptr [rax], LAPIC_LVT_MASKED
    mov eax, LAPIC_BASE + LAPIC_SVR
    mov dword ptr [rax], LAPIC_SVR_ENABLE | 0xFF

    /* The GSI's redirection entry: destination APIC ID 0, then vector, unmasked. */
    lea eax, [r13 * 2 + 0x11]
    mov [r14 + IOAPIC_IOREGSEL], eax
    mov dword ptr [r14 + IOAPIC_IOWIN], 0
    lea eax, [r13 * 2 + 0x10]
    mov [r14 + IOAPIC_IOREGSEL], eax
    mov dword ptr [r14 + IOAPIC_IOWIN], VECTOR

    mov dword ptr [r12 + TIMER_DELAY_US], DELAY
    lea rsi, [rip + armed]
    mov ecx, armed_end - armed
    call print

wait:
    cli
    cmp dword ptr [rip + interrupts], 0
    jne woke
    sti
    hlt
    jmp wait
woke:
    mov eax, [r12 + TIMER_STATUS]
    and eax, TIMER_STATUS_FIRED | TIMER_STATUS_ARMED
    cmp eax, TIMER_STATUS_FIRED
    mov al, 2
    jne exit
    mov r15d, [r12 + TIMER_COUNT]

    /* "fired, count " then N in decimal, built backwards from the end of the buffer. */
    lea rsi, [rip + fired]
    mov ecx, fired_end - fired
    call print
    lea rdi, [rip + number_end]
    mov byte ptr [rdi - 1], '\n'
    lea rsi, [rdi - 1]
    mov eax, r15d
    mov ecx, 10
1:  xor edx, edx
    div ecx
    add dl, '0'
    dec rsi
    mov [rsi], dl
    test eax, eax
    jnz 1b
    mov rcx, rdi
    sub rcx, rsi
    call print

    /* It must not fire again. */
    sti
    mov ecx, SETTLE_READS
2:  cmp [r12 + TIMER_COUNT], r15d
    jne again
    cmp dword ptr [rip + interrupts], 1
    jne again
    dec ecx
    jnz 2b
    cli
    xor eax, eax
    jmp exit
again:
    mov al, 3
    jmp exit
no_entry:
    mov al, 1
exit:
    out EXIT_PORT, al
3:  cli
    hlt
    jmp 3b

/* rcx bytes at rsi to COM1. */
print:
    mov dx, COM1_BASE + UART_THR
    rep outsb
    ret

/* The entry of kind edi, instance 0, in the table at rbx; exits 1 if there is none. */
find_entry:
    movzx ecx, word ptr [rbx + BI_COUNT]
    movzx eax, word ptr [rbx + BI_HEADER_SIZE]
    add rax, rbx
    movzx edx, word ptr [rbx + BI_ENTRY_SIZE]
4:  test ecx, ecx
    jz no_entry
    cmp word ptr [rax + BE_KIND], di
    jne 5f
    cmp word ptr [rax + BE_INSTANCE], 0
    je 6f
5:  add rax, rdx
    dec ecx
    jmp 4b
6:  ret

timer_interrupt:
    push rax
    inc dword ptr [rip + interrupts]
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
interrupts:
    .long 0
armed:
    .ascii "timer armed\n"
armed_end:
fired:
    .ascii "fired, count "
fired_end:
number:
    .ascii "0000000000\n"
number_end:
