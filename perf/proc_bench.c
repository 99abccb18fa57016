/* SPDX-License-Identifier: MIT */
/*
 * perf/proc_bench.c - spawn-and-wait of /bin/true per second:
 *
 *   weft      weft_process_run(/bin/true), one after another
 *   weft100   the same, 100 at a time (100 tasks of one group)
 *   plain     posix_spawn + waitpid in a plain C loop (the baseline)
 *   plain100  posix_spawn of 100, then waitpid of each
 *
 * Usage: weft_proc_bench [seconds per case, default 2]. Prints one line
 * per case: runs, seconds, runs per second. Go's exec.Command is
 * perf/go/proc_bench.go.
 */
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

extern char **environ;

static const char *const argv_true[] = {"/bin/true", NULL};
static double secs = 2;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void report(const char *name, long n, double t)
{
    printf("%-9s %8ld runs %6.2f s %9.0f /s\n", name, n, t, (double)n / t);
    fflush(stdout);
}

static void plain(int batch)
{
    double t0 = now(), t;
    long n = 0;
    pid_t pids[100];
    do {
        for (int i = 0; i < batch; i++)
            if (posix_spawn(&pids[i], argv_true[0], NULL, NULL,
                            (char *const *)argv_true, environ) != 0)
                abort();
        for (int i = 0; i < batch; i++) {
            int st;
            if (waitpid(pids[i], &st, 0) < 0 || st != 0)
                abort();
        }
        n += batch;
    } while ((t = now() - t0) < secs);
    report(batch == 1 ? "plain" : "plain100", n, t);
}

static int one(void *arg)
{
    (void)arg;
    int st = -1;
    int rc = weft_process_run(argv_true, NULL, 0, NULL, NULL, NULL, NULL, &st);
    return rc < 0 ? rc : st != 0 ? -EPROTO : 0;
}

static int weft_main(void *arg)
{
    int batch = (int)(intptr_t)arg;
    double t0 = now(), t;
    long n = 0;
    do {
        if (batch == 1) {
            int rc = one(NULL);
            if (rc < 0)
                return rc;
        } else {
            weft_group g;
            weft_group_enter(&g);
            for (int i = 0; i < batch; i++)
                weft_group_spawn(&g, one, NULL);
            int rc = weft_group_exit(&g, 0);
            if (rc < 0)
                return rc;
        }
        n += batch;
    } while ((t = now() - t0) < secs);
    report(batch == 1 ? "weft" : "weft100", n, t);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        secs = atof(argv[1]);
    for (int round = 0; round < 2; round++) {
        plain(1);
        if (weft_run(weft_main, (void *)(intptr_t)1, NULL) != 0)
            return 1;
        plain(100);
        if (weft_run(weft_main, (void *)(intptr_t)100, NULL) != 0)
            return 1;
    }
    return 0;
}
