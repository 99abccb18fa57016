/* SPDX-License-Identifier: MIT */
/*
 * weft/core.h - the multi-core runtime (API.md, "Multi-core runtime"):
 * one loop per core, each on its own thread pinned to one CPU; tasks
 * never migrate; a group's children may run on other cores and are
 * cancelled and awaited as members of the group. Seastar's
 * smp::submit_to and glommio's executor pool, with structured
 * cancellation across cores.
 */
#ifndef WEFT_CORE_H
#define WEFT_CORE_H

#include <weft/base.h>
#include <weft/group.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Run one loop per core (ncores 0 = one per CPU of the affinity mask;
 * the calling thread is core 0's), main(arg) on core 0, and return main's
 * result once every task on every core has ended. ncores 1 behaves as
 * weft_run. More cores than CPUs in the mask is -EINVAL (no
 * oversubscription), as is the virtual clock with ncores > 1. A loop that
 * cannot start makes it fail with no thread left behind. */
int weft_run_cores(unsigned ncores, weft_fn main, void *arg,
                   const weft_options *opts);

/* Loops of this runtime (1 under weft_run, 0 outside any loop), and the
 * calling task's loop, 0 .. count - 1 (0 outside a loop). */
unsigned weft_core_count(void);
unsigned weft_core_id(void);

/* A child of g on another core (core may be the caller's own): its error
 * is g's, cancelling g cancels it, weft_group_exit waits for it. Its
 * deadline is g's effective deadline at the spawn. -EINVAL for a core out
 * of range. */
int weft_group_spawn_on(weft_group *g, unsigned core, weft_fn fn, void *arg);

/* Run fn(arg) as a task on core, wait for it and return its result; a
 * cancellation of the caller cancels that task and waits for it to end
 * (-ECANCELED unless it finished first). -EINVAL for a core out of
 * range. */
int weft_core_call(unsigned core, weft_fn fn, void *arg);

#ifdef __cplusplus
}
#endif
#endif
