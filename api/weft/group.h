/* SPDX-License-Identifier: MIT */
/*
 * weft/group.h - task groups (anyio.create_task_group).
 *
 * A group is a cancel scope plus its children. The host body runs inside
 * the group's scope; weft_group_exit waits for every child. The first
 * child error other than -ECANCELED (or rc < 0 from the host body)
 * cancels the group's scope; every error is kept (anyio's ExceptionGroup).
 */
#ifndef WEFT_GROUP_H
#define WEFT_GROUP_H

#include <weft/scope.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How many errors a group keeps inline; more go to memory owned by the task
 * that entered the group (freed when that task ends). */
#define WEFT_GROUP_ERRORS_KEPT 8

struct weft__group_more;

typedef struct weft_group {
    /* private */
    weft_scope wf_scope;
    struct weft_task *wf_host; /* waiting in weft_group_exit, or NULL */
    size_t wf_children;        /* live children, started or not */
    size_t wf_nerr;            /* errors seen (may exceed those kept) */
    bool wf_child_cancelled;   /* a child ended with -ECANCELED */
    struct {
        int rc;
        char name[28];
    } wf_err[WEFT_GROUP_ERRORS_KEPT];
    struct weft__group_more *wf_more; /* errors past the inline ones */
} weft_group;

void weft_group_enter(weft_group *g);
int weft_group_spawn(weft_group *g, weft_fn fn,
                     void *arg); /* anyio start_soon */
int weft_group_spawn_named(weft_group *g, const char *name, weft_fn fn,
                           void *arg);
int weft_group_start(weft_group *g, weft_fn fn, void *arg,
                     void **value);  /* anyio start */
void weft_task_started(void *value); /* task_status.started */
/* Wait for every child; return the first error (the host body's rc first,
 * then the children's in the order they failed) other than a cancellation
 * the group caused; with none, as weft_scope_exit on the group's scope:
 * an outer cancellation stays -ECANCELED, weft_group_cancel gives 0. */
int weft_group_exit(weft_group *g, int rc);
weft_scope *weft_group_scope(weft_group *g); /* tg.cancel_scope */
void weft_group_cancel(weft_group *g);       /* caught: exit gives 0 */
/* Every error kept (after exit too): how many, and the i-th with the name
 * of its task (task_name may be NULL). */
size_t weft_group_error_count(const weft_group *g);
int weft_group_error(const weft_group *g, size_t i, const char **task_name);

/* Extra: start with a name (anyio's start(name=...)). */
int weft_group_start_named(weft_group *g, const char *name, weft_fn fn,
                           void *arg, void **value);

#ifdef __cplusplus
}
#endif
#endif
