/* SPDX-License-Identifier: MIT */
/*
 * engine/fiber.c - fibers over the assembly switch, and the sanitizers'
 * view of them: ASan and TSan are told of every switch so that both work
 * on programs that use weft (Valgrind is told of every stack in stack.c).
 */
#include "engine/engine.h"

#include <pthread.h>
#include <string.h>

#ifdef WF_ASAN
void __sanitizer_start_switch_fiber(void **fake_stack_save, const void *bottom,
                                    size_t size);
void __sanitizer_finish_switch_fiber(void *fake_stack_save,
                                     const void **bottom_old, size_t *size_old);
#endif
#ifdef WF_TSAN
void *__tsan_get_current_fiber(void);
void *__tsan_create_fiber(unsigned flags);
void __tsan_destroy_fiber(void *fiber);
void __tsan_switch_to_fiber(void *fiber, unsigned flags);
#endif

void wf_ctx_boot(void);

void wf_fiber_init(struct wf_fiber *f, void *stack_lo, size_t size,
                   void (*entry)(void *), void *arg)
{
    memset(f, 0, sizeof *f);
    f->stack_lo = stack_lo;
    f->stack_size = size;
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
    void **sp = (void **)top;
#if defined(__x86_64__)
    *--sp = (void *)wf_ctx_boot; /* the return address of the first switch */
    *--sp = NULL;                /* rbp */
    *--sp = NULL;                /* rbx */
    *--sp = arg;                 /* r12 */
    *--sp = (void *)entry;       /* r13 */
    *--sp = NULL;                /* r14 */
    *--sp = NULL;                /* r15 */
#elif defined(__aarch64__)
    sp -= 22; /* 176 bytes: x19-x30, d8-d15 */
    memset(sp, 0, 176);
    sp[0] = arg;                  /* x19 */
    sp[1] = (void *)entry;        /* x20 */
    sp[11] = (void *)wf_ctx_boot; /* x30 */
#else
#error "weft supports x86-64 and aarch64"
#endif
    f->sp = sp;
#ifdef WF_TSAN
    f->tsan = __tsan_create_fiber(0);
#endif
}

void wf_fiber_adopt_thread(struct wf_fiber *f)
{
    memset(f, 0, sizeof *f);
#ifdef WF_ASAN
    pthread_attr_t attr;
    void *lo;
    size_t size;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        if (pthread_attr_getstack(&attr, &lo, &size) == 0) {
            f->stack_lo = lo;
            f->stack_size = size;
        }
        pthread_attr_destroy(&attr);
    }
#endif
#ifdef WF_TSAN
    f->tsan = __tsan_get_current_fiber();
#endif
}

void wf_fiber_destroy(struct wf_fiber *f)
{
#ifdef WF_TSAN
    if (f->tsan)
        __tsan_destroy_fiber(f->tsan);
    f->tsan = NULL;
#endif
    (void)f;
}

/* Called first thing on a new fiber's stack (ASan's half of the switch). */
void wf_fiber_started(struct wf_fiber *self)
{
#ifdef WF_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    (void)self;
}

#if defined(WF_ASAN) || defined(WF_TSAN)
void wf_fiber_switch(struct wf_fiber *from, struct wf_fiber *to, bool from_dies)
{
#ifdef WF_ASAN
    /* A dying fiber passes NULL so ASan frees its fake stack. */
    __sanitizer_start_switch_fiber(from_dies ? NULL : &from->asan_fake,
                                   to->stack_lo, to->stack_size);
#endif
#ifdef WF_TSAN
    __tsan_switch_to_fiber(to->tsan, 0);
#endif
    wf_ctx_switch(&from->sp, &to->sp);
#ifdef WF_ASAN
    /* Back on from's stack; the thread's own stack learns its bounds here. */
    const void *lo;
    size_t size;
    __sanitizer_finish_switch_fiber(from->asan_fake, &lo, &size);
    (void)lo;
    (void)size;
#endif
    (void)from_dies;
}
#endif
