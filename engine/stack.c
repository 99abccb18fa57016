/* SPDX-License-Identifier: MIT */
/*
 * engine/stack.c - task stacks: mmap'd with a guard region below, the
 * task record at the top, recycled through a per-loop free list (a fresh
 * stack costs a few microseconds of syscalls, a pooled one nothing).
 *
 * Invariants:
 * - A stack is one mapping [map, map + map_len): L->guard bytes of
 *   PROT_NONE (WF_GUARD, 64 KiB: address space only), then the usable
 *   stack, then the task record. MAP_NORESERVE: a page costs memory only
 *   once touched, so the default size costs nothing until used.
 * - A pooled stack keeps resident at most its top WF_STACK_KEEP bytes plus
 *   what tasks touched without ever waiting that deep: a task that waited
 *   deeper (t->deep) has the rest given back when its stack is pooled, so
 *   an idle task on a recycled stack costs what it would on a fresh one.
 * - An overflow faults in the guard (frames of code built with
 *   -fstack-clash-protection, which weft exports, touch every page from
 *   the top down) or, from code built without it, somewhere below; the
 *   SIGSEGV handler, on an alternate stack on every loop thread, names
 *   the current task when the fault address is in or just below its
 *   guard, or its stack pointer is below its usable bottom.
 */
#include "engine/engine.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#ifdef WEFT_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

/*
 * Where the task record goes: at the top, less a "colour" of 0-15 x 256
 * bytes that differs between stacks, so that the records and the hot top
 * of many stacks do not all fall into the same few L1 cache sets (they
 * would, every one being at the same offset in its page).
 */
static size_t task_offset(size_t map_len, unsigned colour)
{
    return ((map_len - sizeof(struct weft_task)) & ~(size_t)63) -
           (size_t)(colour % 16) * 256;
}

/* A stack with its task record, from the pool or fresh from the kernel. */
#ifdef WF_ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

/* Stacks mapped now, in the whole process: the sweep's census
 * (engine/sweep.c) checks that a run gave every one back. */
static _Atomic long stacks_mapped;

struct weft_task *wf_stack_get(struct wf_loop *L)
{
    struct weft_task *t = L->pool;
    if (t) {
        L->pool = t->pool_next;
        L->npool--;
#ifdef WF_ASAN
        /* The last task left its frames' redzones poisoned. */
        char *lo = (char *)t->map + L->guard;
        __asan_unpoison_memory_region(lo, (size_t)((char *)t - lo));
#endif
        return t;
    }
    size_t len = L->stack_size + L->guard;
    char *map =
        mmap(NULL, len, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (map == MAP_FAILED)
        return NULL;
    /* Fails with ENOMEM past vm.max_map_count: no stack, no task. */
    if (mprotect(map, L->guard, PROT_NONE) != 0) {
        munmap(map, len);
        return NULL;
    }
    atomic_fetch_add_explicit(&stacks_mapped, 1, memory_order_relaxed);
    t = (struct weft_task *)(map + task_offset(len, L->colour++));
    t->map = map;
    t->map_len = len;
    t->vg_id = VALGRIND_STACK_REGISTER(map + L->guard, (char *)t);
    return t;
}

static void stack_free(struct weft_task *t)
{
    VALGRIND_STACK_DEREGISTER(t->vg_id);
#ifdef WF_ASAN
    /* ASan keeps shadow across munmap: a later mapping here would
     * inherit this stack's redzones. */
    __asan_unpoison_memory_region(t->map, t->map_len);
#endif
    munmap(t->map, t->map_len);
    atomic_fetch_sub_explicit(&stacks_mapped, 1, memory_order_relaxed);
}

long wf_stacks_mapped(void)
{
    return atomic_load_explicit(&stacks_mapped, memory_order_relaxed);
}

/*
 * A task that waited deeper than WF_STACK_KEEP (the old 64 KiB default:
 * no program that ran before pays) leaves pages that the next, maybe idle,
 * task on this stack would carry: give them back, one madvise.
 */
static void stack_trim(struct wf_loop *L, struct weft_task *t)
{
    if (t->deep <= WF_STACK_KEEP)
        return;
    char *lo = (char *)t->map + L->guard;
    uintptr_t keep = ((uintptr_t)t - WF_STACK_KEEP) & ~(uintptr_t)(L->page - 1);
    if ((char *)keep > lo)
        madvise(lo, (size_t)((char *)keep - lo), MADV_DONTNEED);
}

void wf_stack_put(struct wf_loop *L, struct weft_task *t)
{
    if (L->npool >= L->pool_cap) {
        stack_free(t);
        return;
    }
    stack_trim(L, t);
    t->pool_next = L->pool;
    L->pool = t;
    L->npool++;
}

void wf_stack_pool_drain(struct wf_loop *L)
{
    struct weft_task *t;
    while ((t = L->pool)) {
        L->pool = t->pool_next;
        stack_free(t);
    }
    L->npool = 0;
}

/* ---- naming the task whose stack overflowed ---- */

static struct sigaction prev_segv;
static pthread_mutex_t segv_mu = PTHREAD_MUTEX_INITIALIZER;
static __thread void *altstack;

static void put(const char *s)
{
    ssize_t rc = write(2, s, strlen(s));
    (void)rc;
}

/* The interrupted stack pointer, from the signal's context. */
static char *fault_sp(void *uc)
{
    ucontext_t *u = uc;
#if defined(__x86_64__)
    return (char *)u->uc_mcontext.gregs[REG_RSP];
#elif defined(__aarch64__)
    return (char *)u->uc_mcontext.sp;
#endif
}

/*
 * Whether a fault on this thread is t's stack overflowing: the address is
 * in its guard or the page below (a probe, or a frame just past it), or
 * its stack pointer went below its usable bottom (a frame of code built
 * without stack probes that skipped the guard: wherever it then faults,
 * the task is past its stack). WF_OVERFLOW_REACH bounds the latter, so
 * that a fault on some unrelated stack far below is not blamed on t.
 */
#define WF_OVERFLOW_REACH ((size_t)256 * 1024 * 1024)

static bool is_overflow(const struct wf_loop *L, const struct weft_task *t,
                        const char *addr, const char *sp)
{
    const char *map = t->map;
    const char *bottom = map + L->guard;
    if (addr >= map - L->page && addr < bottom)
        return true;
    return sp < bottom && (size_t)(bottom - sp) <= WF_OVERFLOW_REACH;
}

static void say_overflow(const struct weft_task *t)
{
    char id[24];
    int n = 0;
    uint64_t v = t->id;
    do
        id[sizeof id - 1 - n++] = (char)('0' + v % 10);
    while ((v /= 10) && n < 20);
    put("weft: stack overflow in task '");
    /* t->name only: naming an unnamed task is not signal-safe. */
    put(t->name[0] ? t->name : "(unnamed)");
    put("' (id ");
    ssize_t rc = write(2, id + sizeof id - n, n);
    (void)rc;
    put("): raise weft_options.stack_size\n");
}

static void on_segv(int sig, siginfo_t *si, void *uc)
{
    struct wf_loop *L = wf_cur;
    struct weft_task *t = L ? L->current : NULL;
    if (t && is_overflow(L, t, si->si_addr, fault_sp(uc))) {
        say_overflow(t);
        signal(SIGSEGV, SIG_DFL);
        return; /* the fault repeats and kills the process */
    }
    if (prev_segv.sa_flags & SA_SIGINFO) {
        prev_segv.sa_sigaction(sig, si, uc);
    } else if (prev_segv.sa_handler != SIG_DFL &&
               prev_segv.sa_handler != SIG_IGN) {
        prev_segv.sa_handler(sig);
    } else {
        signal(SIGSEGV, SIG_DFL);
    }
}

/* Installed when a loop starts, again if someone replaced it since. */
static void install_segv(void)
{
    struct sigaction cur;
    pthread_mutex_lock(&segv_mu);
    if (sigaction(SIGSEGV, NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
        cur.sa_sigaction == on_segv) {
        pthread_mutex_unlock(&segv_mu);
        return;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_segv;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &prev_segv);
    pthread_mutex_unlock(&segv_mu);
}

void wf_overflow_guard_install(struct wf_loop *L)
{
    if (L->opts.flags & WEFT_OPT_NO_OVERFLOW_HANDLER)
        return;
    install_segv();
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return; /* the thread has one already (ASan sets its own) */
    size_t size = 64 * 1024;
    altstack = malloc(size);
    if (!altstack)
        return;
    stack_t ss = {.ss_sp = altstack, .ss_size = size, .ss_flags = 0};
    if (sigaltstack(&ss, NULL) != 0) {
        free(altstack);
        altstack = NULL;
    }
}

void wf_overflow_guard_remove(struct wf_loop *L)
{
    if (!altstack)
        return;
    stack_t ss = {.ss_flags = SS_DISABLE};
    sigaltstack(&ss, NULL);
    free(altstack);
    altstack = NULL;
}
