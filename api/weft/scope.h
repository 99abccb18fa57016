/* SPDX-License-Identifier: MIT */
/*
 * weft/scope.h - cancel scopes (anyio.CancelScope, move_on_after,
 * fail_after), level-triggered as in trio.
 *
 * Once a scope is cancelled (weft_scope_cancel, or its deadline passes),
 * every checkpoint of every task inside it returns -ECANCELED, again and
 * again, until the scope is exited. A shielded scope hides every outer
 * cancellation from the code inside it. Scopes nest strictly: exit them in
 * reverse order of entry, in the task that entered them.
 */
#ifndef WEFT_SCOPE_H
#define WEFT_SCOPE_H

#include <weft/base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_scope {
    /* private */
    struct weft_scope *wf_parent; /* enclosing scope */
    struct weft__link wf_node;    /* in wf_parent's wf_kids */
    struct weft__link wf_kids;    /* nested scopes and tasks' roots */
    struct weft_task *wf_task;    /* the task that entered it */
    struct weft__timer wf_timer;  /* the deadline */
    uint32_t wf_magic;
    uint16_t wf_flags;
    uint8_t wf_reason;
    uint8_t wf_state;
} weft_scope;

/* Enter s (declared by the caller, alive until exit) in the calling task;
 * a deadline already past cancels at the first checkpoint. */
void weft_scope_enter(weft_scope *s,
                      weft_time deadline); /* WEFT_FOREVER = none */
void weft_move_on_after(weft_scope *s,
                        weft_time delay); /* deadline = now + delay */
void weft_fail_after(weft_scope *s,
                     weft_time delay); /* same; exit gives -ETIMEDOUT */
/*
 * Leave s and return what the code after it should see. It catches only
 * its own cancellation: if rc == -ECANCELED, s is cancelled (by
 * weft_scope_cancel or its deadline) and no cancelled scope outside s is
 * visible (there is none, or s is shielded), then cancelled_caught
 * becomes true and it returns 0 -- -ETIMEDOUT for weft_fail_after when
 * the deadline caused it. Otherwise it returns rc unchanged: an inner
 * scope lets an outer cancellation pass on up to the scope that owns it.
 * Exit scopes in reverse order of entry, in the task that entered them;
 * anything else aborts, naming both scopes.
 */
int weft_scope_exit(weft_scope *s, int rc);
/* Cancel s: every checkpoint inside returns -ECANCELED until it exits.
 * From any task of the loop; after exit it does nothing. Not a checkpoint. */
void weft_scope_cancel(weft_scope *s);
/* Takes effect at once, earlier or later (a passed one cancels now). */
void weft_scope_set_deadline(weft_scope *s, weft_time deadline);
weft_time weft_scope_deadline(const weft_scope *s); /* WEFT_FOREVER = none */
/* A shield hides outer cancellations from the code inside; s's own cancel
 * and deadline still act. Set it before the first checkpoint inside. */
void weft_scope_set_shield(weft_scope *s, bool shield);
bool weft_scope_shield(const weft_scope *s);
/* Cancelled by weft_scope_cancel or its deadline (not by an outer scope). */
bool weft_scope_cancel_called(const weft_scope *s);
/* After exit: exit caught the cancellation (returned 0 or -ETIMEDOUT). */
bool weft_scope_cancelled_caught(const weft_scope *s);
/* The earliest deadline of the enclosing scopes up to the nearest shield;
 * WEFT_FOREVER if none; in the past if a scope is already cancelled. */
weft_time weft_current_effective_deadline(void);

#ifdef __cplusplus
}
#endif
#endif
