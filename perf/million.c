/* SPDX-License-Identifier: MIT */
/*
 * perf/million.c - a million sleeping tasks in one loop (issue 16): spawn
 * N tasks that each sleep until cancelled, let every one of them reach
 * its sleep, read the resident memory, then cancel and join them all.
 *
 *   million [-n N] [-k STACK_SIZE] [-c STACK_CACHE] [-r ROUNDS]
 *
 * Prints one line per round:
 *
 *   tasks=N spawn_ns=... spawn_cpu_ns=... rss_per_task=... maps=...
 *   join_ns=... rss_after_kib=...
 *
 * spawn_ns: wall time per task from the first weft_group_spawn until
 * every task sleeps (the spawns, then the round that runs each task to its
 * sleep); spawn_cpu_ns: the process's CPU time for the same (the machine
 * may be shared). rss_per_task: the growth of the resident set
 * (/proc/self/statm) over the round, per task. maps: lines of
 * /proc/self/maps while they all sleep (vm.max_map_count bounds it).
 * join_ns, join_cpu_ns: cancel and join, per task. -k and -c set
 * weft_options.stack_size and stack_cache. A second round (-r 2) spawns on the
 * stacks the first left. Go's peer is perf/go/million.go.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <weft.h>

static long ntasks = 1000000;
static int rounds = 1;

static double clock_ns(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* Resident pages (statm's second field), in bytes. */
static long rss_bytes(void)
{
    long size = 0, res = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &res) != 2)
        res = -1;
    fclose(f);
    return res < 0 ? -1 : res * sysconf(_SC_PAGESIZE);
}

static long map_count(void)
{
    int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char buf[4096];
    long n = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        for (ssize_t i = 0; i < r; i++)
            n += buf[i] == '\n';
    close(fd);
    return n;
}

static int sleeper(void *arg)
{
    (void)arg;
    return weft_sleep_forever();
}

static int one_round(void)
{
    weft_group g;
    long rss0 = rss_bytes();
    double t0 = clock_ns(CLOCK_MONOTONIC);
    double c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    weft_group_enter(&g);
    long n = 0;
    int rc = 0;
    for (; n < ntasks; n++) {
        rc = weft_group_spawn(&g, sleeper, NULL);
        if (rc < 0)
            break;
    }
    /* One checkpoint of the root: every task spawned before it runs to
     * its sleep first (FIFO). */
    weft_checkpoint();
    double t1 = clock_ns(CLOCK_MONOTONIC);
    double c1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    long rss1 = rss_bytes();
    long maps = map_count();
    if (rc < 0)
        fprintf(stderr, "million: spawn %ld failed: %s\n", n + 1,
                weft_strerror(rc));
    weft_group_cancel(&g);
    int erc = weft_group_exit(&g, 0);
    double t2 = clock_ns(CLOCK_MONOTONIC);
    double c2 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    if (n == 0)
        return rc;
    printf("tasks=%ld spawn_ns=%.0f spawn_cpu_ns=%.0f rss_per_task=%.0f "
           "maps=%ld join_ns=%.0f join_cpu_ns=%.0f rss_after_kib=%ld\n",
           n, (t1 - t0) / (double)n, (c1 - c0) / (double)n,
           (double)(rss1 - rss0) / (double)n, maps, (t2 - t1) / (double)n,
           (c2 - c1) / (double)n, rss_bytes() / 1024);
    fflush(stdout);
    return rc < 0 ? rc : erc;
}

static int million_main(void *arg)
{
    (void)arg;
    for (int r = 0; r < rounds; r++) {
        int rc = one_round();
        if (rc < 0)
            return rc;
    }
    return 0;
}

int main(int argc, char **argv)
{
    weft_options o;
    memset(&o, 0, sizeof o);
    int c;
    while ((c = getopt(argc, argv, "n:k:r:c:")) != -1) {
        switch (c) {
        case 'n':
            ntasks = atol(optarg);
            break;
        case 'k':
            o.stack_size = (size_t)atol(optarg);
            break;
        case 'c':
            o.stack_cache = (unsigned)atol(optarg);
            break;
        case 'r':
            rounds = atoi(optarg);
            break;
        default:
            fprintf(stderr, "usage: million [-n N] [-k STACK_SIZE] "
                            "[-c STACK_CACHE] [-r ROUNDS]\n");
            return 2;
        }
    }
    int rc = weft_run(million_main, NULL, &o);
    if (rc < 0) {
        fprintf(stderr, "million: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
