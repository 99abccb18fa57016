/* SPDX-License-Identifier: MIT */
/*
 * engine/switch_x86_64.S - the context switch: save the callee-saved
 * registers (rbx, rbp, r12-r15) on the current stack, store its stack
 * pointer, load the other one and pop its registers. Nothing else: no
 * signal mask, no FPU state (the SysV ABI makes MXCSR/x87 control
 * callee-saved only across calls that change them, which weft never does).
 */
#if defined(__x86_64__)
    .text
    .globl wf_ctx_switch
    .hidden wf_ctx_switch
    .type wf_ctx_switch, @function
    .p2align 4
/* void wf_ctx_switch(void **save_sp, void *const *load_sp) */
wf_ctx_switch:
    .cfi_startproc
    endbr64
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq (%rsi), %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .cfi_endproc
    .size wf_ctx_switch, .-wf_ctx_switch

    .globl wf_ctx_boot
    .hidden wf_ctx_boot
    .type wf_ctx_boot, @function
    .p2align 4
/* A new fiber's first return lands here: entry (r13) runs with arg (r12). */
wf_ctx_boot:
    .cfi_startproc
    .cfi_undefined rip
    endbr64
    movq %r12, %rdi
    callq *%r13
    ud2
    .cfi_endproc
    .size wf_ctx_boot, .-wf_ctx_boot
#endif
    .section .note.GNU-stack,"",@progbits
