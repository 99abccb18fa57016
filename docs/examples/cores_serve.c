/* SPDX-License-Identifier: MIT */
/*
 * docs/examples/cores_serve.c - the every-core guide's server: one port
 * served from every core with weft_serve_cores (a SO_REUSEPORT listener
 * and a loop per core), a few clients, and a cancellation that stops
 * every core's server.
 *
 * Serves on 2 cores, or 1 when the affinity mask has one CPU. Exits 0
 * when every client got its echo and every server stopped.
 */
#define _GNU_SOURCE /* sched_getaffinity */
#include <weft.h>

#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

enum { CLIENTS = 8 };

struct app {
    int port;
    bool steered;
    weft_event ready;
    atomic_int served[2]; /* connections served by each core */
};

/* Runs on the core that accepted the connection. */
static int echo(weft_stream *s, void *arg)
{
    struct app *a = arg;
    char buf[64];
    ssize_t n = weft_stream_recv(s, buf, sizeof buf);
    if (n <= 0)
        return (int)n;
    atomic_fetch_add(&a->served[weft_core_id()], 1);
    n = weft_stream_send(s, buf, (size_t)n);
    return n < 0 ? (int)n : 0;
}

static void ready(int port, bool steered, void *arg)
{
    struct app *a = arg;
    a->port = port;
    a->steered = steered;
    weft_event_set(&a->ready);
}

static int server(void *arg)
{
    weft_serve_cores_opts o = {.on_ready = ready};
    /* Port 0: core 0 binds a free port, the other cores reuse it. */
    return weft_serve_cores("127.0.0.1", 0, echo, arg, &o);
}

static int client(void *arg)
{
    struct app *a = arg;
    weft_stream *s;
    int rc = weft_tcp_connect(&s, "127.0.0.1", (uint16_t)a->port);
    if (rc < 0)
        return rc;
    char back[6] = {0};
    if (weft_stream_send(s, "hello", 5) != 5 ||
        weft_stream_recv_exactly(s, back, 5) != 5 || strcmp(back, "hello"))
        rc = -EPROTO;
    weft_stream_close(s);
    return rc;
}

static int app_main(void *arg)
{
    struct app *a = arg;
    weft_group g;
    weft_group_enter(&g);
    weft_group_spawn(&g, server, a);
    int rc = weft_event_wait(&a->ready);
    printf("serving port %d on %u core(s), %s\n", a->port, weft_core_count(),
           a->steered ? "steered by CPU" : "spread by the kernel's hash");

    /* Clients on every core: with steering, each is served by its own. */
    weft_group clients;
    weft_group_enter(&clients);
    for (int i = 0; i < CLIENTS && rc == 0; i++)
        rc = weft_group_spawn_on(&clients, (unsigned)i % weft_core_count(),
                                 client, a);
    rc = weft_group_exit(&clients, rc);

    weft_group_cancel(&g); /* stops every core's server, and waits */
    return weft_group_exit(&g, rc);
}

int main(void)
{
    cpu_set_t set;
    unsigned n = 1;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) >= 2)
        n = 2;
    struct app a = {0};
    weft_event_init(&a.ready);
    int rc = weft_run_cores(n, app_main, &a, NULL);
    int s0 = atomic_load(&a.served[0]), s1 = atomic_load(&a.served[1]);
    printf("served: %d on core 0, %d on core 1\n", s0, s1);
    if (rc < 0 || s0 + s1 != CLIENTS) {
        fprintf(stderr, "cores_serve: %s\n",
                rc < 0 ? weft_strerror(rc) : "lost");
        return 1;
    }
    return 0;
}
