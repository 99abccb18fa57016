/* SPDX-License-Identifier: MIT */
/*
 * tools/weft-load/run.c - a run on every core (weft_run_cores): core 0
 * resolves the host once, builds the request, and starts one task per
 * core; each core runs its share of the connections (connection i on
 * core i % cores), each connection a task, and a watchdog that ends
 * requests past --timeout. A deadline (--warmup + -d) on a scope around
 * them all ends the run; SIGINT ends it early, SIGUSR1 prints a MARK.
 * At the end of the warm-up each core forgets what it counted, and core
 * 0 opens the measured window (the clock, our CPU time, the server's).
 * Then core 0 merges the cores' counters and histograms and reports.
 */
#include "load.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

const char *const wl_err_names[WL_E_KINDS] = {
    "connect", "read", "write", "timeout", "parse", "status_4xx", "status_5xx"};

static struct wl_core *cores;
static struct wl_conn *conns; /* every core's, cores[k].conns points in */
static weft_scope run_scope;

/* What the report measures from and to: the clock, our CPU time, and the
 * server's time on a CPU (--server-pid). */
struct window {
    weft_time t;
    struct rusage ru;
    uint64_t server_ns;
};
static struct window win0;
static const struct wl_opts *run_opts; /* for the signal task */

/* Nanoseconds the process has run on a CPU: the first field of
 * /proc/PID/schedstat (its main thread's; the softirq work done in its
 * context is included), as perf/net-bench has always read it. 0 if it
 * cannot be read (the process has exited). */
static uint64_t server_ns(int pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/schedstat", pid);
    FILE *f = fopen(path, "re");
    uint64_t v = 0;
    if (f) {
        if (fscanf(f, "%" SCNu64, &v) != 1)
            v = 0;
        fclose(f);
    }
    return v;
}

static void window_mark(const struct wl_opts *o, struct window *w)
{
    w->t = weft_now();
    getrusage(RUSAGE_SELF, &w->ru);
    w->server_ns = o->server_pid ? server_ns(o->server_pid) : 0;
}

/* Resolve the host once, to the numeric address every connection uses. */
static int resolve(struct wl_opts *o)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype =
                                 o->mode == WL_UDP ? SOCK_DGRAM : SOCK_STREAM};
    struct addrinfo *res;
    int rc = weft_getaddrinfo(o->host, NULL, &hints, &res);
    if (rc < 0) {
        fprintf(stderr, "weft-load: cannot resolve %s: %s\n", o->host,
                weft_strerror(rc));
        return rc;
    }
    const void *a =
        res->ai_family == AF_INET6
            ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
            : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
    if (!inet_ntop(res->ai_family, a, o->addr, sizeof o->addr))
        rc = -errno;
    freeaddrinfo(res);
    return rc;
}

/* Every period, end the requests of this core older than --timeout. */
static int watchdog(void *arg)
{
    struct wl_core *k = arg;
    const struct wl_opts *o = k->conns[0].o;
    weft_time period = o->timeout / 4;
    if (period > 250 * WEFT_MSEC)
        period = 250 * WEFT_MSEC;
    for (;;) {
        int rc = weft_sleep(period);
        if (rc < 0)
            return 0;
        weft_time now = weft_now();
        for (unsigned i = 0; i < k->nconns; i++) {
            struct wl_conn *c = &k->conns[i];
            if (c->in_scope && c->busy_since &&
                now - c->busy_since > o->timeout && !c->timed_out) {
                c->timed_out = true;
                weft_scope_cancel(&c->scope);
            }
        }
    }
}

/* --warmup: at its end, this core forgets what it counted (its tasks
 * take turns on one thread: none is halfway through a count), and core 0
 * opens the window. A message sent before and answered after counts. The
 * done counter keeps going: SIGUSR1's MARK counts the warm-up too. */
static int end_warmup(void *arg)
{
    struct wl_core *k = arg;
    if (weft_sleep_until(k->conns[0].o->measure_from) < 0)
        return 0;
    k->bytes_in = k->bytes_out = 0;
    memset(k->err, 0, sizeof k->err);
    memset(k->status, 0, sizeof k->status);
    hist_init(&k->hist);
    if (weft_core_id() == 0)
        window_mark(k->conns[0].o, &win0);
    return 0;
}

/* --spin: a task that only yields. While it is ready, its loop never
 * waits in the ring: every round ends in one io_uring_enter that submits
 * and reaps without sleeping (an epoll_wait with no timeout on the epoll
 * backend), and the task costs a checkpoint per round, no switch when it
 * is alone. */
static int spin(void *arg)
{
    (void)arg;
    while (weft_checkpoint() == 0)
        ;
    return 0;
}

/* One core's part: its connections, and its watchdog (and the warm-up's
 * end, and the spinner) while they run. */
static int core_main(void *arg)
{
    struct wl_core *k = arg;
    if (!k->nconns)
        return 0;
    const struct wl_opts *o = k->conns[0].o;
    weft_group dog, g;
    weft_group_enter(&dog);
    int rc = weft_group_spawn(&dog, watchdog, k);
    if (rc == 0 && o->warmup > 0)
        rc = weft_group_spawn(&dog, end_warmup, k);
    if (rc == 0 && o->spin)
        rc = weft_group_spawn(&dog, spin, NULL);
    weft_group_enter(&g);
    for (unsigned i = 0; i < k->nconns && rc == 0; i++)
        rc = weft_group_spawn(&g, wl_conn_task, &k->conns[i]);
    rc = weft_group_exit(&g, rc);
    weft_group_cancel(&dog);
    return weft_group_exit(&dog, rc);
}

/* Once a second on a terminal: requests/s, errors, elapsed. */
static int progress(void *arg)
{
    const struct wl_opts *o = arg;
    weft_time t0 = weft_now(), last = t0;
    uint64_t before = 0;
    for (;;) {
        if (weft_sleep(WEFT_SEC) < 0)
            break;
        uint64_t done = 0, errors = 0;
        for (unsigned i = 0; i < o->cores; i++) {
            done += atomic_load_explicit(&cores[i].done, memory_order_relaxed);
            errors +=
                atomic_load_explicit(&cores[i].errors, memory_order_relaxed);
        }
        weft_time now = weft_now();
        fprintf(stderr,
                "\r\033[K  %6.1fs  %10.0f req/s  %llu requests  %llu "
                "errors",
                (double)(now - t0) / 1e9,
                (double)(done - before) * 1e9 / (double)(now - last),
                (unsigned long long)done, (unsigned long long)errors);
        before = done;
        last = now;
    }
    fprintf(stderr, "\r\033[K");
    return 0;
}

/* SIGUSR1: how many responses every core has had so far (the warm-up's
 * included), and when. Two marks bracket a window whose responses a
 * caller counts (perf/net-bench counts the server's system calls). */
static void mark(const struct wl_opts *o)
{
    uint64_t done = 0;
    for (unsigned i = 0; i < o->cores; i++)
        done += atomic_load_explicit(&cores[i].done, memory_order_relaxed);
    fprintf(stderr, "MARK msgs=%" PRIu64 " ns=%" PRId64 "\n", done,
            (int64_t)weft_now());
}

/* SIGUSR1: a mark, and the run goes on. SIGINT or SIGTERM: end the run
 * early, and report what it did. */
static int on_signal(void *arg)
{
    weft_signal_receiver *sr = arg;
    int sig;
    while ((sig = weft_signal_receive(sr)) == SIGUSR1)
        mark(run_opts);
    if (sig > 0)
        weft_scope_cancel(&run_scope);
    return 0;
}

/* Split the connections over the cores, and the work over them. */
static int plan(struct wl_opts *o, weft_time start)
{
    struct wl_conn *all = conns = calloc(o->conns, sizeof *all);
    if (!all)
        return -ENOMEM;
    unsigned at = 0;
    for (unsigned k = 0; k < o->cores; k++) {
        cores[k].conns = all + at;
        for (unsigned i = k; i < o->conns; i += o->cores) {
            struct wl_conn *c = &all[at++];
            c->core = &cores[k];
            c->o = o;
            c->index = i;
            c->budget = o->nreq ? o->nreq / o->conns + (i < o->nreq % o->conns)
                                : UINT64_MAX;
            if (o->rate) {
                /* rate/conns each, the connections' turns spread evenly */
                c->interval = (weft_time)((double)o->conns * 1e9 / o->rate);
                c->next = start + (weft_time)((double)i * 1e9 / o->rate);
            }
            cores[k].nconns++;
        }
    }
    return 0;
}

static double cpu_seconds(const struct timeval *tv)
{
    return (double)tv->tv_sec + (double)tv->tv_usec / 1e6;
}

static void collect(const struct wl_opts *o, struct wl_result *r)
{
    hist_init(&r->hist);
    for (unsigned k = 0; k < o->cores; k++) {
        struct wl_core *c = &cores[k];
        hist_merge(&r->hist, &c->hist);
        r->bytes_in += c->bytes_in;
        r->bytes_out += c->bytes_out;
        for (int e = 0; e < WL_E_KINDS; e++) {
            r->err[e] += c->err[e];
            r->errors += c->err[e];
        }
        for (int s = 0; s < 10; s++)
            r->status[s] += c->status[s];
    }
    r->requests = r->hist.count;
}

/* The cores' tasks under the run's scope (deadline -d), and the
 * progress line beside them. */
static int load(struct wl_opts *o)
{
    weft_time deadline =
        o->secs ? o->measure_from + (weft_time)(o->secs * 1e9) : WEFT_FOREVER;
    weft_group side, g;
    weft_group_enter(&side);
    int rc = 0;
    if (o->progress)
        rc = weft_group_spawn(&side, progress, o);
    weft_scope_enter(&run_scope, deadline);
    weft_group_enter(&g);
    for (unsigned k = 0; k < o->cores && rc == 0; k++)
        rc = weft_group_spawn_on(&g, k, core_main, &cores[k]);
    rc = weft_group_exit(&g, rc);
    rc = weft_scope_exit(&run_scope, rc);
    weft_group_cancel(&side);
    return weft_group_exit(&side, rc);
}

/* https://: one client configuration for every connection of every core
 * (a config serves any number of streams on any thread). A body that
 * ends with the connection is common in HTTP/1.1, and servers often close
 * without close_notify: truncation is an end of stream, as for curl. */
static int tls_setup(struct wl_opts *o)
{
    int rc = weft_tls_config_client(&o->tls_config, o->cacert);
    if (rc == 0 && o->insecure)
        rc = weft_tls_config_verify(o->tls_config, false);
    if (rc == 0)
        rc = weft_tls_config_allow_truncation(o->tls_config, true);
    if (rc < 0) {
        char why[256] = "";
        weft_tls_error(why, sizeof why);
        fprintf(stderr, "weft-load: TLS set-up%s%s: %s%s%s\n",
                o->cacert ? " with " : "", o->cacert ? o->cacert : "",
                weft_strerror(rc), *why ? ": " : "", why);
    }
    return rc;
}

static int app(void *arg)
{
    struct wl_opts *o = arg;
    int rc = resolve(o);
    if (rc < 0 || (rc = wl_build_batch(o)) < 0)
        return rc;
    if (o->tls && (rc = tls_setup(o)) < 0)
        return rc;
    o->cores = weft_core_count();
    cores = aligned_alloc(64, sizeof *cores * o->cores);
    if (!cores)
        return -ENOMEM;
    memset(cores, 0, sizeof *cores * o->cores);
    for (unsigned k = 0; k < o->cores; k++)
        hist_init(&cores[k].hist);

    int sigs[] = {SIGINT, SIGTERM, SIGUSR1};
    weft_signal_receiver *sr;
    if ((rc = weft_signal_open(&sr, sigs, 3)) < 0)
        return rc;
    run_opts = o;
    weft_group sg;
    weft_group_enter(&sg);
    rc = weft_group_spawn(&sg, on_signal, sr);

    /* The window is the whole run, unless a warm-up's end moves it on. */
    window_mark(o, &win0);
    o->measure_from = win0.t + (weft_time)(o->warmup * 1e9);
    if (rc == 0 && (rc = plan(o, win0.t)) == 0)
        rc = load(o);
    struct window win1;
    window_mark(o, &win1);
    weft_group_cancel(&sg);
    rc = weft_group_exit(&sg, rc);
    weft_signal_close(sr);
    if (rc < 0) {
        free(conns);
        free(cores);
        return rc;
    }

    static struct wl_result r;
    collect(o, &r);
    r.secs = (double)(win1.t - win0.t) / 1e9;
    r.cpu_user =
        cpu_seconds(&win1.ru.ru_utime) - cpu_seconds(&win0.ru.ru_utime);
    r.cpu_sys = cpu_seconds(&win1.ru.ru_stime) - cpu_seconds(&win0.ru.ru_stime);
    if (win1.server_ns > win0.server_ns)
        r.server_cpu = (double)(win1.server_ns - win0.server_ns) / 1e9;
    if (o->json)
        wl_report_json(o, &r);
    else
        wl_report_human(o, &r);
    if (o->hist_file && (rc = wl_write_hist(o, &r, o->hist_file)) < 0)
        fprintf(stderr, "weft-load: --hist %s: %s\n", o->hist_file,
                weft_strerror(rc));
    if (o->plot_file)
        wl_plot(o, &r);
    free(conns);
    free(cores);
    return r.requests ? 0 : 1;
}

int wl_run(struct wl_opts *o)
{
    int rc = weft_run_cores(o->cores, app, o, NULL);
    weft_tls_config_free(o->tls_config);
    return rc;
}
