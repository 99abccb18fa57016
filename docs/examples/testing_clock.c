/* SPDX-License-Identifier: MIT */
/*
 * testing_clock.c - an hour of timeouts in milliseconds: the virtual
 * clock (weft_options.clock = WEFT_CLOCK_VIRTUAL).
 *
 * A "server" replies only every 100 s; a client gives up after
 * 30 s, three times, then waits patiently; a heartbeat ticks every minute
 * for an hour. On the real clock this would take an hour; here it takes
 * a few milliseconds, and every time printed is exact. Exits 0 when every
 * result is the one shown in the comments.
 */
#include <errno.h>
#include <stdio.h>
#include <weft.h>

#define MINUTE (60 * WEFT_SEC)

/* Sends a reply every 100 s, on a real socket. */
static int slow_server(void *arg)
{
    weft_stream *s = arg;
    for (int i = 0; i < 2; i++) {
        weft_sleep(100 * WEFT_SEC);
        if (weft_stream_send(s, "!", 1) != 1)
            return -EIO;
    }
    return 0;
}

/* One receive: real I/O on the ring. */
static int read_reply(weft_stream *s)
{
    char c;
    return (int)weft_stream_recv(s, &c, 1);
}

static int heartbeat(void *arg)
{
    int *beats = arg;
    for (int i = 0; i < 60; i++) {
        weft_sleep(MINUTE);
        ++*beats;
    }
    return 0;
}

static int test_main(void *arg)
{
    weft_stream *client, *server;
    int rc = weft_stream_pair(&client, &server);
    if (rc < 0)
        return rc;
    int beats = 0, failures = 0;
    weft_group g;
    weft_group_enter(&g);
    weft_group_spawn(&g, heartbeat, &beats);
    weft_group_spawn(&g, slow_server, server);

    /* Three impatient tries: each gives up after 30 s. */
    for (int i = 0; i < 3; i++) {
        weft_scope s;
        weft_fail_after(&s, 30 * WEFT_SEC);
        rc = read_reply(client);                   /* -ECANCELED */
        if (weft_scope_exit(&s, rc) == -ETIMEDOUT) /* -ETIMEDOUT */
            failures++;
    }
    printf("%d timeouts, at t = %lld s\n", failures,
           (long long)(weft_now() / WEFT_SEC)); /* 3 timeouts, t = 90 s */

    /* Patient now: the first reply comes at 100 s, the second at 200 s. */
    rc = read_reply(client);                /* 1 */
    rc = rc == 1 ? read_reply(client) : rc; /* 1 */
    printf("second reply at t = %lld s\n",
           (long long)(weft_now() / WEFT_SEC)); /* 200 s */
    bool replied = rc == 1 && weft_now() == 200 * WEFT_SEC;

    int exit_rc = weft_group_exit(&g, 0); /* the heartbeat's hour */
    printf("%d heartbeats, at t = %lld min\n", beats,
           (long long)(weft_now() / MINUTE)); /* 60, at 60 min */
    weft_stream_close(client);
    weft_stream_close(server);
    bool ok = failures == 3 && replied && exit_rc == 0 && beats == 60 &&
              weft_now() == 60 * MINUTE;
    return ok ? 0 : 1;
}

int main(void)
{
    weft_options opts = {0};
    opts.clock = WEFT_CLOCK_VIRTUAL; /* weft_now() starts at 0 */
    weft_time real = weft_now();     /* outside a loop: the real clock */
    int rc = weft_run(test_main, NULL, &opts);
    printf("an hour in %lld ms of real time\n",
           (long long)((weft_now() - real) / WEFT_MSEC));
    return rc == 0 ? 0 : 1;
}
