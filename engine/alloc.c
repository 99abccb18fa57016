/* SPDX-License-Identifier: MIT */
/*
 * engine/alloc.c - weft's own allocations: malloc and friends, counted
 * (a process-wide count of live blocks, for the sweep's leak check) and
 * made to fail on purpose under WEFT_FAULT_ALLOC. A block taken with
 * wf_malloc is given back with wf_free, never with free: memory handed to
 * the user (weft_path_read_all's buffer) comes from plain malloc.
 *
 * A failure is decided with the current loop's generator, so only calls
 * made on a loop's thread can fail; a worker's allocations never do.
 */
#include "engine/engine.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_size_t live;

static inline bool fail_now(void)
{
    struct wf_loop *L = wf_cur;
    return L && wf_unlikely(L->faults != NULL) && wf_faults_alloc_fails(L);
}

static inline void *counted(void *p)
{
    if (p)
        atomic_fetch_add_explicit(&live, 1, memory_order_relaxed);
    return p;
}

void *wf_malloc(size_t n)
{
    return fail_now() ? NULL : counted(malloc(n));
}

void *wf_calloc(size_t n, size_t size)
{
    return fail_now() ? NULL : counted(calloc(n, size));
}

/* As realloc, except that size 0 is not a free: it keeps a small block. */
void *wf_realloc(void *p, size_t n)
{
    if (!p)
        return wf_malloc(n);
    if (fail_now())
        return NULL; /* p is untouched, as when realloc fails */
    return realloc(p, n ? n : 1);
}

char *wf_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *d = wf_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

void wf_free(void *p)
{
    if (!p)
        return;
    atomic_fetch_sub_explicit(&live, 1, memory_order_relaxed);
    free(p);
}

size_t wf_alloc_live(void)
{
    return atomic_load_explicit(&live, memory_order_relaxed);
}
