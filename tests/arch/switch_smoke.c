/* SPDX-License-Identifier: MIT */
/*
 * tests/arch/switch_smoke.c - the context switch alone, for an
 * architecture this machine cannot run natively: two fibers ping-pong
 * 1,000 times, with deep calls and a live callee-saved FP register.
 * Run by scripts/test-aarch64 under qemu-user.
 */
#include "engine/engine.h"
#include <stdio.h>
#include <stdlib.h>
static struct wf_fiber main_f, f1;
static int counter;
static double fsum(int n, double x)
{
    return n ? fsum(n - 1, x * 1.0000001) + x : 0;
}
static void entry(void *arg)
{
    wf_fiber_started(&f1);
    for (;;) {
        counter += (int)(long)arg;
        volatile double d = fsum(100, 1.5);
        (void)d;
        wf_fiber_switch(&f1, &main_f, false);
    }
}
int main(void)
{
    size_t sz = 256 * 1024;
    char *stk = malloc(sz);
    wf_fiber_adopt_thread(&main_f);
    wf_fiber_init(&f1, stk, sz, entry, (void *)3L);
    register double keep = 2.5; /* a callee-saved FP reg must survive */
    for (int i = 0; i < 1000; i++)
        wf_fiber_switch(&main_f, &f1, false);
    printf("counter=%d keep=%g\n", counter, keep);
    return counter == 3000 && keep == 2.5 ? 0 : 1;
}
