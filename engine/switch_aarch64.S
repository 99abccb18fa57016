/* SPDX-License-Identifier: MIT */
/*
 * engine/switch_aarch64.S - the context switch for AAPCS64: save x19-x30
 * and d8-d15 on the current stack, store sp, load the other one, restore.
 */
#if defined(__aarch64__)
    .text
    .globl wf_ctx_switch
    .hidden wf_ctx_switch
    .type wf_ctx_switch, %function
    .p2align 4
/* void wf_ctx_switch(void **save_sp, void *const *load_sp) */
wf_ctx_switch:
    sub sp, sp, #176
    stp x19, x20, [sp, #0]
    stp x21, x22, [sp, #16]
    stp x23, x24, [sp, #32]
    stp x25, x26, [sp, #48]
    stp x27, x28, [sp, #64]
    stp x29, x30, [sp, #80]
    stp d8, d9, [sp, #96]
    stp d10, d11, [sp, #112]
    stp d12, d13, [sp, #128]
    stp d14, d15, [sp, #144]
    mov x9, sp
    str x9, [x0]
    ldr x9, [x1]
    mov sp, x9
    ldp x19, x20, [sp, #0]
    ldp x21, x22, [sp, #16]
    ldp x23, x24, [sp, #32]
    ldp x25, x26, [sp, #48]
    ldp x27, x28, [sp, #64]
    ldp x29, x30, [sp, #80]
    ldp d8, d9, [sp, #96]
    ldp d10, d11, [sp, #112]
    ldp d12, d13, [sp, #128]
    ldp d14, d15, [sp, #144]
    add sp, sp, #176
    ret
    .size wf_ctx_switch, .-wf_ctx_switch

    .globl wf_ctx_boot
    .hidden wf_ctx_boot
    .type wf_ctx_boot, %function
    .p2align 4
/* A new fiber's first return lands here: entry (x20) runs with arg (x19). */
wf_ctx_boot:
    mov x0, x19
    blr x20
    brk #0
    .size wf_ctx_boot, .-wf_ctx_boot
#endif
    .section .note.GNU-stack,"",%progbits
