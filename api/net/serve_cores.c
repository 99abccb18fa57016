/* SPDX-License-Identifier: MIT */
/*
 * api/net/serve_cores.c - weft_serve_cores: one port served from every
 * core of the runtime. Each core opens its own SO_REUSEPORT listener on
 * its own loop (in core order, so that core i's socket is the i-th of the
 * kernel's reuseport group) and serves its connections there; where the
 * kernel takes a classic BPF reuseport program, a connection goes to the
 * core whose CPU received it (as nginx's and Envoy's listeners do).
 */
#include "api/net/net_impl.h"

#include <linux/filter.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>

struct sc_core {
    struct sc *sc;
    unsigned core;
    int cpu;          /* the one CPU its loop is pinned to, or -1 */
    weft_listener *l; /* owned here until its serving task takes it */
};

struct sc {
    const char *host;
    uint16_t port;
    int (*handler)(weft_stream *, void *);
    void *arg;
    const weft_serve_cores_opts *opts;
    weft_listen_opts lo;
    weft_serve_opts so;
    struct sc_core *cores;
    unsigned n;
};

/* The CPU the calling loop's thread is pinned to (weft_run_cores pins
 * each core's thread to one CPU), or -1 when it may run on several. */
static int own_cpu(void)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    if (pthread_getaffinity_np(pthread_self(), sizeof set, &set) != 0 ||
        CPU_COUNT(&set) != 1)
        return -1;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &set))
            return cpu;
    return -1;
}

/* On core c: its listener, on the port core 0 bound. */
static int open_one(void *p)
{
    struct sc_core *c = p;
    struct sc *sc = c->sc;
    c->cpu = own_cpu();
    uint16_t port = sc->port;
    if (c->core > 0)
        port = (uint16_t)weft_listener_port(sc->cores[0].l);
    return weft_tcp_listen_opts(&c->l, sc->host, port, &sc->lo);
}

static int close_one(void *p)
{
    struct sc_core *c = p;
    weft_listener_close(c->l);
    c->l = NULL;
    return 0;
}

static int serve_one(void *p)
{
    struct sc_core *c = p;
    struct sc *sc = c->sc;
    int rc = weft_listener_serve_opts(c->l, sc->handler, sc->arg, &sc->so);
    weft_listener_close(c->l);
    c->l = NULL;
    return rc;
}

/*
 * Steering: a classic BPF program for the reuseport groups of core 0's
 * sockets (one per address family) that returns the index of the socket
 * of the core pinned to the CPU that runs it (the CPU handling the SYN):
 *   ld #cpu; jeq cpu_0 -> ret 0; jeq cpu_1 -> ret 1; ...; ret ~0
 * An index past the group's end (a CPU with no core) makes the kernel
 * fall back to its hash. False when the kernel refuses it or some core's
 * CPU is unknown: connections are then spread by the hash alone.
 */
static bool steer(struct sc *sc)
{
    if (sc->n < 2 || (sc->opts && sc->opts->no_steer))
        return false;
    size_t len = 2 + 2 * (size_t)sc->n;
    if (len > BPF_MAXINSNS)
        return false;
    struct sock_filter *code = wf_calloc(len, sizeof *code);
    if (!code)
        return false;
    size_t k = 0;
    code[k++] = (struct sock_filter)BPF_STMT(
        BPF_LD | BPF_W | BPF_ABS, (uint32_t)(SKF_AD_OFF + SKF_AD_CPU));
    bool ok = true;
    for (unsigned i = 0; i < sc->n; i++) {
        if (sc->cores[i].cpu < 0)
            ok = false;
        code[k++] = (struct sock_filter)BPF_JUMP(
            BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)sc->cores[i].cpu, 0, 1);
        code[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, i);
    }
    code[k++] = (struct sock_filter)BPF_STMT(BPF_RET | BPF_K, 0xffffffffu);
    struct sock_fprog prog = {.len = (unsigned short)k, .filter = code};
    weft_listener *l = sc->cores[0].l;
    for (int i = 0; ok && i < l->nacc; i++)
        if (setsockopt(l->acc[i].fd, SOL_SOCKET, SO_ATTACH_REUSEPORT_CBPF,
                       &prog, sizeof prog) < 0)
            ok = false;
    if (!ok) /* none or all: take back what was attached */
        for (int i = 0; i < l->nacc; i++)
            setsockopt(l->acc[i].fd, SOL_SOCKET, SO_DETACH_REUSEPORT_BPF, NULL,
                       0);
    wf_free(code);
    return ok;
}

/* Listeners no serving task took (an open that failed half-way, a
 * cancellation before the serving started): closed on their own cores,
 * whatever cancellation is under way. */
static void close_rest(struct sc *sc)
{
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_set_shield(&s, true);
    for (unsigned i = 0; i < sc->n; i++)
        if (sc->cores[i].l && weft_core_call(i, close_one, &sc->cores[i]) < 0)
            close_one(&sc->cores[i]); /* never started: no loop holds it */
    weft_scope_exit(&s, 0);
}

WF_EXPORT int weft_serve_cores(const char *host, uint16_t port,
                               int (*handler)(weft_stream *, void *), void *arg,
                               const weft_serve_cores_opts *opts)
{
    struct weft_task *t;
    unsigned n = weft_core_count();
    int rc = wf_entry(&t, handler && (!opts || opts->cores <= n), false);
    if (rc < 0)
        return rc;
    if (opts && opts->cores)
        n = opts->cores;
    struct sc sc = {.host = host,
                    .port = port,
                    .handler = handler,
                    .arg = arg,
                    .opts = opts,
                    .n = n};
    if (opts) {
        sc.lo = opts->listen;
        sc.so = opts->serve;
    }
    sc.lo.reuse_port = true;
    sc.cores = wf_calloc(n, sizeof *sc.cores);
    if (!sc.cores)
        return -ENOMEM;
    for (unsigned i = 0; i < n; i++)
        sc.cores[i] = (struct sc_core){.sc = &sc, .core = i, .cpu = -1};
    /* One after the other, in core order: the reuseport group's order. */
    for (unsigned i = 0; i < n && rc == 0; i++)
        rc = weft_core_call(i, open_one, &sc.cores[i]);
    if (rc == 0) {
        bool steered = steer(&sc);
        if (opts && opts->on_ready)
            opts->on_ready(weft_listener_port(sc.cores[0].l), steered, arg);
        weft_group g;
        weft_group_enter(&g);
        for (unsigned i = 0; i < n && rc == 0; i++)
            rc = weft_group_spawn_on(&g, i, serve_one, &sc.cores[i]);
        if (rc < 0)
            weft_group_cancel(&g);
        rc = weft_group_exit(&g, rc);
    }
    close_rest(&sc);
    wf_free(sc.cores);
    return rc;
}
