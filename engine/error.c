/* SPDX-License-Identifier: MIT */
/*
 * engine/error.c - names for error codes, the reason a loop could not
 * start, and the one way weft reports misuse it cannot return: wf_panic.
 */
#include "engine/engine.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Why this thread's last weft_run failed to start its loop: run_rc is the
 * code it returned, until weft_strerror has given the reason once (the
 * text stays until the next weft_run, for a caller that still holds it). */
static __thread int run_rc;
static __thread char run_why[WF_RING_WHY];

int wf_run_error_set(int rc, const char *why)
{
    run_rc = rc;
    snprintf(run_why, sizeof run_why, "%s", why ? why : "");
    return rc;
}

const char *wf_run_error_why(void)
{
    return run_why;
}

void wf_panic(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fputs("weft: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

static const struct {
    int code;
    const char *text;
} names[] = {
    {ECANCELED, "cancelled: the task's cancel scope was cancelled"},
    {ETIMEDOUT, "timed out: a fail_after deadline passed"},
    {ECHILD, "the task returned before calling weft_task_started"},
    {EPERM, "operation not permitted (or called outside a weft loop)"},
    {EBUSY, "resource busy (another task is already using it)"},
};

WF_EXPORT const char *weft_strerror(int rc)
{
    if (rc >= 0)
        return "success";
    if (rc == INT_MIN) /* -rc would overflow; no errno is that large */
        return "unknown error";
    if (rc == run_rc && run_why[0]) {
        /* Given once: a later call with the same code is about a later
         * error, not the failed start (repros/strerror_stale.c). */
        run_rc = 0;
        return run_why;
    }
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].code == -rc)
            return names[i].text;
    const char *s = strerrordesc_np(-rc);
    return s ? s : "unknown error";
}
