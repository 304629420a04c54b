/*
 * One 16-byte stub per interrupt vector, so stub v lives at isr_stubs + 16 * v. Each
 * pushes a zero error code where the CPU pushes none, then the vector, and joins
 * isr_common, which saves the registers C may clobber and calls interrupt_dispatch.
 */
    .intel_syntax noprefix
    .text

/* Exceptions that push an error code: 8, 10-14, 17, 21, 29, 30. */
    .set ERROR_CODE_VECTORS, 0x60227D00

    .balign 16
    .global isr_stubs
isr_stubs:
    .set vector, 0
    .rept 256
    .balign 16
    .set has_error_code, 0
    .if vector < 32
    .set has_error_code, (ERROR_CODE_VECTORS >> vector) & 1
    .endif
    .if has_error_code == 0
    .byte 0x68                          /* push imm32: no error code from the CPU */
    .long 0
    .endif
    .byte 0x68                          /* push imm32: the vector number */
    .long vector
    jmp isr_common
    .set vector, vector + 1
    .endr

isr_common:
    push rax
    push rcx
    push rdx
    push rsi
    push rdi
    push r8
    push r9
    push r10
    push r11
    mov rdi, rsp                        /* struct interrupt_frame * */
    cld
    call interrupt_dispatch
    pop r11
    pop r10
    pop r9
    pop r8
    pop rdi
    pop rsi
    pop rdx
    pop rcx
    pop rax
    add rsp, 16                         /* vector and error code */
    iretq
