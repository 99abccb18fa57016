/* SPDX-License-Identifier: MIT */
/*
 * tools/weft-load/load.h - what weft-load's files share: the options of a
 * run, each core's counters, each connection's state.
 *
 *   options.c   the command line, the URL, the request bytes
 *   run.c       the run on every core: cores, connections, the schedule
 *   conn.c      one connection's loop: HTTP, TCP echo and UDP echo
 *   report.c    the human summary, --json, --hist and --plot
 *   http_resp.c the response parser; hist.c the latency histogram
 */
#ifndef WEFT_LOAD_H
#define WEFT_LOAD_H

#include "hist.h"

#include <weft.h>

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

enum wl_mode { WL_HTTP, WL_TCP, WL_UDP };

/* Errors by kind, in the order of the report. */
enum wl_err {
    WL_E_CONNECT, /* could not connect (or open the UDP socket, or the TLS
                     handshake failed) */
    WL_E_READ,    /* the peer closed or reset mid-response, a read failed */
    WL_E_WRITE,   /* a send failed */
    WL_E_TIMEOUT, /* no whole response within --timeout */
    WL_E_PARSE,   /* a malformed response (or an echo longer than sent) */
    WL_E_4XX,     /* status 400 .. 499 */
    WL_E_5XX,     /* status 500 .. 599 */
    WL_E_KINDS
};

extern const char *const wl_err_names[WL_E_KINDS];

struct wl_opts {
    enum wl_mode mode;
    const char *url;
    char host[256]; /* as given (no brackets) */
    char addr[64];  /* the numeric address it resolved to, once */
    uint16_t port;
    const char *path; /* HTTP target: "/..." */
    unsigned conns, cores;
    unsigned pipeline; /* HTTP: requests per batch; echo: messages */
    double secs;       /* 0: no time limit (then -n) */
    uint64_t nreq;     /* 0: no count limit */
    double rate;       /* requests per second in all; 0: closed loop */
    weft_time timeout; /* a whole response within this, or an error */
    /* https://: a TLS handshake per connection (failed: a connect error) */
    bool tls, insecure; /* insecure: no verification (--insecure) */
    const char *cacert; /* --cacert; NULL: the system's trust store */
    weft_tls_config *tls_config;
    const char *method;
    const char **headers; /* -H lines */
    unsigned nheaders;
    const char *body_file;
    char *body;
    size_t body_len;
    size_t msg_size; /* echo */
    bool json, progress;
    const char *hist_file, *plot_file;
    /* built once: pipeline copies of the request (or message), back to
     * back; a batch of k sends the first k * req_len bytes */
    char *batch;
    size_t req_len;
    bool head;         /* the method is HEAD: responses have no body */
    bool no_multishot; /* --no-multishot: one receive per response */
    /* --warmup: seconds run before the measured window, not counted */
    double warmup;
    weft_time measure_from; /* when the window opens (the run's start +
                               warmup), set once by run.c before the run */
    bool spin;              /* --spin: no core's loop ever sleeps */
    bool no_spin;           /* --no-spin: not even with --rate */
    int server_pid;         /* --server-pid; 0: none */
};

/* Each core's counters, written by that core's tasks only. The two the
 * progress line reads from core 0 while the run goes on are atomics
 * (relaxed: a count, not an ordering); the rest are read after the run,
 * once every core's tasks have ended. */
struct wl_core {
    _Alignas(64) atomic_uint_fast64_t done, errors;
    uint64_t bytes_in, bytes_out;
    uint64_t err[WL_E_KINDS];
    uint64_t status[10]; /* by hundreds: status[2] is 2xx */
    struct wl_conn *conns;
    unsigned nconns;
    struct hist hist;
};

struct wl_conn {
    struct wl_core *core;
    const struct wl_opts *o;
    unsigned index;       /* 0 .. conns - 1, over every core */
    uint64_t budget;      /* requests it may still send; UINT64_MAX: any */
    weft_time next;       /* open loop: when its next request is due */
    weft_time interval;   /* open loop: between its requests */
    weft_time busy_since; /* waiting for a response since; 0: not */
    weft_scope scope;     /* around one connection: the watchdog cancels it */
    bool in_scope, timed_out;
    char *rbuf;
    size_t off, have; /* rbuf[off..have): received, not consumed yet */
};

/* options.c: the command line; 0, or exits with a usage message. */
int wl_parse_args(struct wl_opts *o, int argc, char **argv);
/* The request bytes (after the address is known, for Host). */
int wl_build_batch(struct wl_opts *o);

/* run.c: the whole run under weft_run_cores; 0 or -errno. */
int wl_run(struct wl_opts *o);

/* conn.c: one connection's task (arg: struct wl_conn). */
int wl_conn_task(void *arg);

static inline void wl_count(atomic_uint_fast64_t *c, uint64_t n)
{
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static inline void wl_error(struct wl_core *k, enum wl_err e)
{
    k->err[e]++;
    wl_count(&k->errors, 1);
}

/* report.c */
struct wl_result {
    struct hist hist;
    uint64_t requests, errors, bytes_in, bytes_out;
    uint64_t err[WL_E_KINDS], status[10];
    double secs, cpu_user, cpu_sys;
    double server_cpu; /* --server-pid: its seconds on a CPU in the window */
};
void wl_report_human(const struct wl_opts *o, const struct wl_result *r);
void wl_report_json(const struct wl_opts *o, const struct wl_result *r);
int wl_write_hist(const struct wl_opts *o, const struct wl_result *r,
                  const char *path);
int wl_plot(const struct wl_opts *o, const struct wl_result *r);

#endif
