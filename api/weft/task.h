/* SPDX-License-Identifier: MIT */
/*
 * weft/task.h - introspection: the current task, names, ids, and a dump of
 * every group and task of the loop with what each is waiting for.
 */
#ifndef WEFT_TASK_H
#define WEFT_TASK_H

#include <weft/base.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_task weft_task;

weft_task *weft_task_current(void); /* NULL outside a loop */
const char *weft_task_name(const weft_task *t);
uint64_t weft_task_id(const weft_task *t);
void weft_dump_tasks(FILE *out); /* tree of groups and tasks */

#ifdef __cplusplus
}
#endif
#endif
