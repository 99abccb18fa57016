/* SPDX-License-Identifier: MIT */
/*
 * engine/stack.c - task stacks: slots carved from large per-loop arenas,
 * a guard below each, the task record at the top; recycled through a
 * per-loop free list (a pooled stack costs nothing, a fresh slot one
 * guard install and the page faults of its first use).
 *
 * Invariants:
 * - An arena is one anonymous MAP_NORESERVE mapping of nslots slots of
 *   L->slot_len bytes, carved from the top down (later stacks lie below
 *   earlier ones, as separate mmaps would). A slot is L->guard bytes of
 *   guard (WF_GUARD, 64 KiB: address space only), then the usable stack,
 *   then the task record. A page costs memory only once touched.
 * - Guards go in with MADV_GUARD_INSTALL (Linux 6.13+), which marks page
 *   table entries and leaves the mapping whole: a million stacks take a
 *   few hundred mappings, far under vm.max_map_count (65,530 by default).
 *   Where the kernel lacks it (probed once, on the first slot) a guard is
 *   mprotect(PROT_NONE), which splits the arena: two mappings per stack,
 *   and a failure past the limit says so (weft_strerror).
 * - Every slot handed out comes back: warm to L->pool (up to pool_cap,
 *   taken LIFO), else cold to L->cold with its pages given back (one
 *   madvise). Arenas are unmapped when the loop closes.
 * - A pooled stack keeps resident at most its top WF_STACK_KEEP bytes plus
 *   what tasks touched without ever waiting that deep: a task that waited
 *   deeper (t->deep) has the rest given back when its stack is pooled, so
 *   an idle task on a recycled stack costs what it would on a fresh one.
 * - An overflow faults in the guard (frames of code built with
 *   -fstack-clash-protection, which weft exports, touch every page from
 *   the top down, at most WF_GUARD apart) or, from code built without it,
 *   somewhere below, in the slots of later tasks (nothing can stop those
 *   writes) until a guard; the SIGSEGV handler, on an alternate stack on
 *   every loop thread, names the current task when the fault address is
 *   in or just below its guard, or its stack pointer is below its usable
 *   bottom.
 */
#include "engine/engine.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <ucontext.h>
#include <unistd.h>

#ifdef WEFT_HAVE_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102 /* Linux 6.13 */
#endif

#ifdef WF_ASAN
void __asan_unpoison_memory_region(void const volatile *addr, size_t size);
#endif

struct wf_arena {
    struct wf_arena *next;
    char *base;
    size_t nslots;
    size_t carved; /* slots [nslots - carved, nslots) were handed out */
};

/* The first arena is small (a program of a few tasks reserves little);
 * each next one doubles, up to ARENA_MAX slots (320 MiB of address space
 * at the default stack size). */
enum { ARENA_FIRST = 16, ARENA_MAX = 1024 };

/* How guards go in: MADV_GUARD_INSTALL until the kernel refuses it. */
enum { GUARD_UNKNOWN, GUARD_MADVISE, GUARD_MPROTECT };
static _Atomic int guard_how;

/* Stacks mapped now, in the whole process: the sweep's census
 * (engine/sweep.c) checks that a run gave every one back. */
static _Atomic long stacks_mapped;

long wf_stacks_mapped(void)
{
    return atomic_load_explicit(&stacks_mapped, memory_order_relaxed);
}

/* ---- why there is no stack: for weft_strerror ---- */

static long read_long(const char *path)
{
    char buf[32];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    wf_close(fd);
    if (n <= 0)
        return -1;
    buf[n] = '\0';
    return strtol(buf, NULL, 10);
}

/* The process's mappings: the lines of /proc/self/maps. */
static long map_count(void)
{
    char buf[4096];
    long lines = 0;
    ssize_t n;
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    wf_close(fd);
    return lines;
}

/*
 * mmap, mprotect or madvise failed with err: name the limit that was hit
 * and how to raise it. vm.max_map_count when the process is at it (the
 * kernel says only ENOMEM); RLIMIT_AS when one is set; else the errno.
 */
static void explain(const struct wf_loop *L, int err)
{
    char why[WF_RING_WHY];
    long max = read_long("/proc/sys/vm/max_map_count");
    long maps = err == ENOMEM && max > 0 ? map_count() : -1;
    struct rlimit as;
    if (maps >= 0 && maps + 4 >= max) {
        bool two = atomic_load(&guard_how) == GUARD_MPROTECT;
        snprintf(why, sizeof why,
                 "no stack for a task: %ld mappings, the limit "
                 "vm.max_map_count=%ld%s; raise it: "
                 "sysctl -w vm.max_map_count=%ld",
                 maps, max, two ? " (2 per stack before Linux 6.13)" : "",
                 max * 4);
    } else if (err == ENOMEM && getrlimit(RLIMIT_AS, &as) == 0 &&
               as.rlim_cur != RLIM_INFINITY) {
        snprintf(why, sizeof why,
                 "no stack for a task: the address-space limit (ulimit -v: "
                 "%llu KiB) is reached, at %zu KiB a stack; raise it or "
                 "weft_options.stack_size",
                 (unsigned long long)(as.rlim_cur / 1024), L->slot_len / 1024);
    } else {
        snprintf(why, sizeof why, "no stack for a task: %s",
                 strerrordesc_np(err) ? strerrordesc_np(err) : "?");
    }
    wf_run_error_set(-ENOMEM, why);
}

/* ---- arenas and their slots ---- */

static struct wf_arena *arena_new(struct wf_loop *L)
{
    size_t n = L->arenas ? L->arenas->nslots * 2 : ARENA_FIRST;
    if (n > ARENA_MAX)
        n = ARENA_MAX;
    /* Room in the cold list for every slot, so that giving one back
     * never needs memory. */
    void **cold = wf_realloc(L->cold, (L->cold_cap + n) * sizeof *cold);
    if (!cold)
        return NULL;
    L->cold = cold;
    struct wf_arena *a = wf_malloc(sizeof *a);
    if (!a)
        return NULL;
    char *base =
        mmap(NULL, n * L->slot_len, PROT_READ | PROT_WRITE,
             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_STACK, -1, 0);
    if (base == MAP_FAILED) {
        explain(L, errno);
        wf_free(a);
        return NULL;
    }
    /* Transparent huge pages (THP "always") would make a task's one
     * touched page 2 MiB. Linux 6.7+ implies this for MAP_STACK. */
    madvise(base, n * L->slot_len, MADV_NOHUGEPAGE);
    L->cold_cap += n;
    *a = (struct wf_arena){.next = L->arenas, .base = base, .nslots = n};
    L->arenas = a;
    return a;
}

/*
 * The guard of a new slot. MADV_GUARD_INSTALL keeps the arena one mapping;
 * EINVAL means a kernel before 6.13 (or a locked mapping): mprotect then.
 */
static int guard_install(char *slot, size_t len)
{
    int how = atomic_load_explicit(&guard_how, memory_order_relaxed);
    if (how != GUARD_MPROTECT) {
        if (madvise(slot, len, MADV_GUARD_INSTALL) == 0) {
            if (how == GUARD_UNKNOWN)
                atomic_store(&guard_how, GUARD_MADVISE);
            return 0;
        }
        if (errno != EINVAL)
            return errno;
        if (how == GUARD_UNKNOWN)
            atomic_store(&guard_how, GUARD_MPROTECT);
    }
    /* Fails with ENOMEM past vm.max_map_count: it splits the arena. */
    return mprotect(slot, len, PROT_NONE) == 0 ? 0 : errno;
}

/* The next slot never handed out, its guard in; NULL if none can be. */
static char *slot_carve(struct wf_loop *L)
{
    struct wf_arena *a = L->arenas;
    if (!a || a->carved == a->nslots) {
        a = arena_new(L);
        if (!a)
            return NULL;
    }
    char *slot = a->base + (a->nslots - 1 - a->carved) * L->slot_len;
    int err = guard_install(slot, L->guard);
    if (err) {
        explain(L, err);
        return NULL;
    }
    a->carved++;
    atomic_fetch_add_explicit(&stacks_mapped, 1, memory_order_relaxed);
    return slot;
}

/*
 * Where the task record goes: at the top, less a "colour" of 0-31 x 64
 * bytes (one cache line) that differs between stacks, so that the records
 * and the hot top of many stacks do not all fall into the same few L1
 * cache sets (they would, every one being at the same offset in its
 * page). At most 1,984 bytes: the record (448 with its alignment) and the
 * frames of a task waiting in a stream receive (1,112 bytes below the
 * record, measured with gcc 12 -O2 while the await's record was 104 bytes
 * larger) stay in the top page with over 500 bytes to spare, so an idle
 * connection's task costs one page. (At 0-15 x 192,
 * up to 2,880, the two highest colours spilled into a second page there:
 * +512 bytes per idle connection on average.)
 */
static size_t task_offset(size_t len, unsigned colour)
{
    return ((len - sizeof(struct weft_task)) & ~(size_t)63) -
           (size_t)(colour % 32) * 64;
}

/* A slot with no record (fresh or cold) becomes a stack. */
static struct weft_task *slot_dress(struct wf_loop *L, char *slot)
{
    struct weft_task *t =
        (struct weft_task *)(slot + task_offset(L->slot_len, L->colour++));
    char *lo = slot + L->guard;
#ifdef WF_ASAN
    /* A cold slot's last task left its frames' redzones poisoned. */
    __asan_unpoison_memory_region(lo, (size_t)((char *)t - lo));
#endif
    t->slot = slot;
    t->vg_id = VALGRIND_STACK_REGISTER(lo, (char *)t);
    return t;
}

/* A stack with its task record: warm from the pool, else a cold slot,
 * else a new one. NULL: weft_strerror(-ENOMEM) says why. */
struct weft_task *wf_stack_get(struct wf_loop *L)
{
    struct weft_task *t = L->pool;
    if (t) {
        L->pool = t->pool_next;
        L->npool--;
#ifdef WF_ASAN
        /* The last task left its frames' redzones poisoned. */
        char *lo = (char *)t->slot + L->guard;
        __asan_unpoison_memory_region(lo, (size_t)((char *)t - lo));
#endif
        return t;
    }
    char *slot = L->ncold ? L->cold[--L->ncold] : slot_carve(L);
    return slot ? slot_dress(L, slot) : NULL;
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
    char *lo = (char *)t->slot + L->guard;
    uintptr_t keep = ((uintptr_t)t - WF_STACK_KEEP) & ~(uintptr_t)(L->page - 1);
    if ((char *)keep > lo)
        madvise(lo, (size_t)((char *)keep - lo), MADV_DONTNEED);
}

/* Past the pool's cap: the slot keeps its guard and address range, and
 * gives back all its pages (the record's too: the slot is re-dressed). */
static void slot_cool(struct wf_loop *L, struct weft_task *t)
{
    char *slot = t->slot;
    VALGRIND_STACK_DEREGISTER(t->vg_id);
    madvise(slot + L->guard, L->stack_size, MADV_DONTNEED);
    L->cold[L->ncold++] = slot;
}

void wf_stack_put(struct wf_loop *L, struct weft_task *t)
{
    if (L->npool >= L->pool_cap) {
        slot_cool(L, t);
        return;
    }
    stack_trim(L, t);
    t->pool_next = L->pool;
    L->pool = t;
    L->npool++;
}

/* The loop is closing: every stack should be back. If one is not (a task
 * record still in use), the arenas stay mapped rather than pull a stack
 * from under it. */
void wf_stack_pool_drain(struct wf_loop *L)
{
    size_t carved = 0;
    for (struct wf_arena *a = L->arenas; a; a = a->next)
        carved += a->carved;
    struct weft_task *t;
    while ((t = L->pool)) {
        L->pool = t->pool_next;
        VALGRIND_STACK_DEREGISTER(t->vg_id);
    }
    bool all_back = carved == L->npool + L->ncold;
    L->npool = 0;
    struct wf_arena *a;
    while ((a = L->arenas)) {
        L->arenas = a->next;
        if (all_back) {
            char *lo = a->base + (a->nslots - a->carved) * L->slot_len;
#ifdef WF_ASAN
            /* ASan keeps shadow across munmap: a later mapping here
             * would inherit these stacks' redzones. */
            __asan_unpoison_memory_region(lo, a->carved * L->slot_len);
#endif
            (void)lo;
            munmap(a->base, a->nslots * L->slot_len);
            atomic_fetch_sub_explicit(&stacks_mapped, (long)a->carved,
                                      memory_order_relaxed);
        }
        wf_free(a);
    }
    wf_free(L->cold);
    L->cold = NULL;
    L->ncold = L->cold_cap = 0;
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
    const char *slot = t->slot;
    const char *bottom = slot + L->guard;
    if (addr >= slot - L->page && addr < bottom)
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
