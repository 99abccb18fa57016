/* SPDX-License-Identifier: MIT */
/*
 * perf/serve_app.c - serving and the signal drain of perf/http_weft and
 * perf/https_weft (perf/serve_app.h).
 */
#include "serve_app.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>

static void ready(int bound, bool steered, void *arg)
{
    (void)arg;
    printf("listening on %d (%u cores, %s)\n", bound, weft_core_count(),
           steered ? "steered by CPU" : "spread by hash");
    fflush(stdout);
}

static int serve(const struct serve_app *a)
{
    if (a->ncores > 1) {
        /* One SO_REUSEPORT listener per core, each serving on its loop. */
        weft_serve_cores_opts so = {.on_ready = ready,
                                    .serve.drain_grace = a->drain_grace};
        int rc =
            weft_serve_cores(a->host, (uint16_t)a->port, a->handler, NULL, &so);
        if (rc < 0 && rc != -ECANCELED)
            fprintf(stderr, "%s: serve on %s:%d: %s\n", a->name, a->host,
                    a->port, weft_strerror(rc));
        return rc;
    }
    weft_listener *l;
    int rc = weft_tcp_listen(&l, a->host, (uint16_t)a->port);
    if (rc < 0) {
        fprintf(stderr, "%s: listen on %s:%d: %s\n", a->name, a->host, a->port,
                weft_strerror(rc));
        return rc;
    }
    printf("listening on %d\n", weft_listener_port(l));
    fflush(stdout);
    weft_serve_opts so = {.drain_grace = a->drain_grace};
    rc = weft_listener_serve_opts(l, a->handler, NULL, &so);
    weft_listener_close(l);
    return rc;
}

/* SIGTERM or SIGINT: drain and exit 0. */
struct drain {
    weft_signal_receiver *r;
    weft_scope serving;
};

static int on_signal(void *arg)
{
    struct drain *d = arg;
    int rc = weft_signal_receive(d->r);
    if (rc > 0) {
        printf("signal %d: draining\n", rc);
        fflush(stdout);
        weft_scope_cancel(&d->serving);
    }
    return 0;
}

int serve_app_main(void *app)
{
    int sigs[] = {SIGTERM, SIGINT};
    struct drain d;
    int rc = weft_signal_open(&d.r, sigs, 2);
    if (rc < 0)
        return rc;
    weft_group g;
    weft_group_enter(&g);
    rc = weft_group_spawn(&g, on_signal, &d);
    if (rc == 0) {
        weft_scope_enter(&d.serving, WEFT_FOREVER);
        rc = weft_scope_exit(&d.serving, serve(app));
    }
    weft_group_cancel(&g);
    rc = weft_group_exit(&g, rc);
    weft_signal_close(d.r);
    return rc;
}
