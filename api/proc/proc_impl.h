/* SPDX-License-Identifier: MIT */
/*
 * api/proc/proc_impl.h - a child process (api/proc/process.c) as
 * weft_process_run (api/proc/run.c) sees it. Internal.
 */
#ifndef WF_API_PROC_IMPL_H
#define WF_API_PROC_IMPL_H

#include "engine/engine.h"
#include <weft/process.h>

struct weft_process {
    struct wf_gate gate; /* weft_process_wait inside; close waits for it */
    int pid;
    int pidfd;
    weft_stream *in, *out, *err; /* the parent's ends, or NULL */
    int status;                  /* once reaped */
    bool reaped;
    bool own_group; /* new_session or new_group: kill the whole group */
    bool waiting;   /* a task is in weft_process_wait */
};

/* SIGKILL the child (and its group) unless reaped, then reap it,
 * shielded from cancellation. */
void wf_process_kill_reap(weft_process *p);

#endif
