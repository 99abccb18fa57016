/* SPDX-License-Identifier: MIT */
/*
 * tests/stack_noprobe.c - a frame far larger than a task's stack, built
 * WITHOUT stack probes (-fno-stack-clash-protection, set on this file in
 * tests/CMakeLists.txt): code weft's users compile without the flags weft
 * exports. Its frame skips the guard; test_stack checks that the fault it
 * ends in still names the task.
 */
#include <stddef.h>

void th_stack_use(volatile char *p, size_t n);
int th_stack_dive_noprobe(void);

/* Writes its 1 MiB array lowest address first: the first write lands far
 * below the task's stack. */
__attribute__((noinline)) int th_stack_dive_noprobe(void)
{
    char big[1 << 20];
    volatile char *v = big;
    for (size_t i = 0; i < sizeof big; i++)
        v[i] = (char)i;
    th_stack_use(v, sizeof big);
    return v[12345];
}
