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
    struct weft_scope *wf_parent;   /* enclosing scope */
    struct weft__link wf_node;      /* in wf_parent's wf_kids */
    struct weft__link wf_kids;      /* nested scopes and tasks' roots */
    struct weft_task *wf_task;      /* the task that entered it */
    struct weft__timer wf_timer;    /* the deadline */
    uint32_t wf_magic;
    uint16_t wf_flags;
    uint8_t wf_reason;
    uint8_t wf_state;
} weft_scope;

void weft_scope_enter(weft_scope *s, weft_time deadline); /* WEFT_FOREVER = none */
void weft_move_on_after(weft_scope *s, weft_time delay);  /* deadline = now + delay */
void weft_fail_after(weft_scope *s, weft_time delay);     /* same; exit gives -ETIMEDOUT */
int weft_scope_exit(weft_scope *s, int rc);
void weft_scope_cancel(weft_scope *s);
void weft_scope_set_deadline(weft_scope *s, weft_time deadline);
weft_time weft_scope_deadline(const weft_scope *s);
void weft_scope_set_shield(weft_scope *s, bool shield);
bool weft_scope_shield(const weft_scope *s);
bool weft_scope_cancel_called(const weft_scope *s);
bool weft_scope_cancelled_caught(const weft_scope *s);
weft_time weft_current_effective_deadline(void);

#ifdef __cplusplus
}
#endif
#endif
