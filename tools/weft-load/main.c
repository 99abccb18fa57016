/* SPDX-License-Identifier: MIT */
/*
 * tools/weft-load/main.c - weft-load, an HTTP/1.1, TCP and UDP echo load
 * generator on weft: every core (weft_run_cores), a task per connection,
 * closed or open loop (--rate), latency percentiles from a log-bucketed
 * histogram. docs/guide/weft-load.md says how to use it.
 */
#include "load.h"

#include <signal.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    static struct wl_opts o; /* static: reachable to the leak checker */
    wl_parse_args(&o, argc, argv);
    signal(SIGPIPE, SIG_IGN);
    int rc = wl_run(&o);
    if (rc < 0) {
        fprintf(stderr, "weft-load: %s\n", weft_strerror(rc));
        return 1;
    }
    return rc;
}
