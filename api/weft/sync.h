/* SPDX-License-Identifier: MIT */
/*
 * weft/sync.h - anyio's synchronisation primitives: Event, Lock,
 * Semaphore, Condition and CapacityLimiter, all cancellation-safe.
 *
 * A cancelled wait never loses a wake-up, a token, a lock hand-off or an
 * item: a waiter is either handed what it waited for (and returns
 * success; its next checkpoint reports the cancellation) or leaves it for
 * the next waiter. Waiting is in user space on the loop: no syscall on an
 * uncontended path, no allocation per wait. A primitive belongs to one
 * loop (thread); declare it anywhere its users can reach, init it, and use
 * it from tasks of that loop.
 */
#ifndef WEFT_SYNC_H
#define WEFT_SYNC_H

#include <weft/base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Event: set once, wakes every waiter ---- */

typedef struct weft_event {
    /* private */
    struct weft__link wf_waiters;
    size_t wf_nwait;
    bool wf_set;
} weft_event;

typedef struct weft_event_stats {
    size_t tasks_waiting;
} weft_event_stats;

void weft_event_init(weft_event *e);
void weft_event_set(weft_event *e);
bool weft_event_is_set(const weft_event *e);
int weft_event_wait(weft_event *e); /* 0, -ECANCELED */
int weft_event_statistics(const weft_event *e, weft_event_stats *st);

/* ---- Lock: FIFO, owned by the task that acquired it ---- */

typedef struct weft_lock {
    /* private */
    struct weft__link wf_waiters;
    size_t wf_nwait;
    struct weft_task *wf_owner; /* for statistics only: records are reused */
    uint64_t wf_owner_id;       /* the owner's task id, 0 when unlocked */
    uint64_t wf_owner_loop;     /* and its loop's serial number */
} weft_lock;

typedef struct weft_lock_stats {
    bool locked;
    /* NULL when unlocked; once the owner has ended, a stale pointer:
     * compare it, never dereference it */
    struct weft_task *owner;
    uint64_t owner_id; /* weft_task_id of the owner, 0 when unlocked */
    size_t tasks_waiting;
} weft_lock_stats;

void weft_lock_init(weft_lock *l);
int weft_lock_acquire(weft_lock *l);     /* 0, -ECANCELED, -EDEADLK if held */
int weft_lock_try_acquire(weft_lock *l); /* 0, -EAGAIN, -EDEADLK */
int weft_lock_release(weft_lock *l);     /* 0, -EPERM if not the owner */
bool weft_lock_locked(const weft_lock *l);
int weft_lock_statistics(const weft_lock *l, weft_lock_stats *st);

/* ---- Semaphore: a counter with an optional maximum ---- */

typedef struct weft_semaphore {
    /* private */
    struct weft__link wf_waiters;
    size_t wf_nwait;
    unsigned wf_value, wf_max;
} weft_semaphore;

typedef struct weft_semaphore_stats {
    size_t tasks_waiting;
} weft_semaphore_stats;

void weft_semaphore_init(weft_semaphore *s, unsigned initial,
                         unsigned max /* 0 = no max */);
int weft_semaphore_acquire(weft_semaphore *s);     /* 0, -ECANCELED */
int weft_semaphore_try_acquire(weft_semaphore *s); /* 0, -EAGAIN */
int weft_semaphore_release(weft_semaphore *s);     /* 0, -EOVERFLOW past max */
unsigned weft_semaphore_value(const weft_semaphore *s);
int weft_semaphore_statistics(const weft_semaphore *s,
                              weft_semaphore_stats *st);

/* ---- Condition: wait for a notification, with a lock ---- */

typedef struct weft_condition {
    /* private */
    weft_lock *wf_lock;
    weft_lock wf_own;
    struct weft__link wf_waiters;
    size_t wf_nwait;
} weft_condition;

typedef struct weft_condition_stats {
    size_t tasks_waiting;
    weft_lock_stats lock;
} weft_condition_stats;

void weft_condition_init(weft_condition *c, weft_lock *l /* NULL = its own */);
int weft_condition_acquire(weft_condition *c);
int weft_condition_release(weft_condition *c);
/* -EPERM without the lock; holds it again on return, also on -ECANCELED */
int weft_condition_wait(weft_condition *c);
void weft_condition_notify(weft_condition *c, unsigned n);
void weft_condition_notify_all(weft_condition *c);
int weft_condition_statistics(const weft_condition *c,
                              weft_condition_stats *st);

/* ---- Limiter: anyio's CapacityLimiter ---- */

typedef struct weft_limiter {
    /* private */
    struct weft__link wf_waiters;
    size_t wf_nwait;
    unsigned wf_total, wf_borrowed;
    uint64_t wf_id; /* names its borrowers in the loop's table */
} weft_limiter;

typedef struct weft_limiter_stats {
    unsigned total_tokens;
    unsigned borrowed_tokens; /* = the number of borrowers */
    size_t tasks_waiting;
} weft_limiter_stats;

void weft_limiter_init(weft_limiter *l, unsigned total_tokens);
/* borrower = current task; -EDEADLK if it already holds one */
int weft_limiter_acquire(weft_limiter *l);
int weft_limiter_acquire_on_behalf_of(weft_limiter *l, const void *borrower);
int weft_limiter_try_acquire(weft_limiter *l); /* -EAGAIN */
int weft_limiter_try_acquire_on_behalf_of(weft_limiter *l,
                                          const void *borrower);
int weft_limiter_release(weft_limiter *l); /* -EPERM if the task holds none */
int weft_limiter_release_on_behalf_of(weft_limiter *l, const void *borrower);
/* raising it wakes waiters; -EINVAL for 0 */
int weft_limiter_set_total_tokens(weft_limiter *l, unsigned total);
unsigned weft_limiter_total_tokens(const weft_limiter *l);
unsigned weft_limiter_borrowed_tokens(const weft_limiter *l);
unsigned weft_limiter_available_tokens(const weft_limiter *l);
int weft_limiter_statistics(const weft_limiter *l, weft_limiter_stats *st);

#ifdef __cplusplus
}
#endif
#endif
