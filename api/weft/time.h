/* SPDX-License-Identifier: MIT */
/*
 * weft/time.h - the clock, sleeping and checkpoints (anyio.current_time,
 * anyio.sleep, anyio.lowlevel.checkpoint*).
 */
#ifndef WEFT_TIME_H
#define WEFT_TIME_H

#include <weft/base.h>

#ifdef __cplusplus
extern "C" {
#endif

weft_time weft_now(void);                 /* CLOCK_MONOTONIC in ns */
int weft_sleep(weft_time delay);          /* 0, or -ECANCELED */
int weft_sleep_until(weft_time deadline); /* 0, or -ECANCELED */
int weft_sleep_forever(void);             /* returns only -ECANCELED */
int weft_checkpoint(void); /* yield once; -ECANCELED if cancelled */
int weft_checkpoint_if_cancelled(void);    /* no yield */
int weft_cancel_shielded_checkpoint(void); /* yield, never cancelled */

/* Virtual clock only (weft_options.clock = WEFT_CLOCK_VIRTUAL): move time
 * forward by delta, firing what falls due. 0; -EPERM outside a loop or on
 * the real clock; -EINVAL if delta < 0. */
int weft_clock_advance(weft_time delta);

#ifdef __cplusplus
}
#endif
#endif
