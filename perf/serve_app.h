/* SPDX-License-Identifier: MIT */
/*
 * perf/serve_app.h - what perf/http_weft and perf/https_weft share: serve
 * a handler on host:port from one core (a listener) or several
 * (weft_serve_cores), print "listening on PORT" once ready, and on
 * SIGTERM/SIGINT drain (stop accepting, let requests under way end within
 * drain_grace) and return 0.
 */
#ifndef WEFT_PERF_SERVE_APP_H
#define WEFT_PERF_SERVE_APP_H

#include <weft.h>

struct serve_app {
    const char *name; /* for messages: "http_weft" */
    const char *host;
    int port;
    unsigned ncores;
    weft_time drain_grace;
    int (*handler)(weft_stream *conn, void *arg);
};

/* The main task of every core: weft_run_cores(n, serve_app_main, app, ...)
 * with app a struct serve_app. */
int serve_app_main(void *app);

#endif
