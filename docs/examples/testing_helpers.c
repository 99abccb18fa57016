/* SPDX-License-Identifier: MIT */
/*
 * testing_helpers.c - testing a line protocol with weft/testing.h's
 * helpers.
 *
 * An "upper-case echo" server is tested over a memory stream pair that
 * hands it one byte per receive (chunk = 1), so its framing meets every
 * split; weft_wait_all_tasks_blocked shows it idle between requests; a
 * sequencer makes two clients take their turns in a fixed order; and
 * weft_free_port gives the same server a real TCP port. It prints:
 *
 *     HELLO
 *     WORLD
 *     server idle, nothing buffered
 *     first
 *     second
 *     TCP on a free port: PING
 *
 * Build: part of the docs' examples (example_testing_helpers); exits 0 on
 * success.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

/* The code under test: read lines, answer each in upper case. */
static int upper_server(void *arg)
{
    weft_stream *s = arg;
    char line[128];
    ssize_t n;
    while ((n = weft_stream_recv_until(s, line, sizeof line - 1, "\n", 1)) >=
           0) {
        for (ssize_t i = 0; i < n; i++)
            line[i] = (char)toupper((unsigned char)line[i]);
        line[n] = '\n';
        if (weft_stream_send(s, line, (size_t)n + 1) < 0)
            break;
    }
    return n == -ENODATA ? 0 : (int)n; /* -ENODATA: the client hung up */
}

static int ask(weft_stream *c, const char *q, char *reply, size_t max)
{
    if (weft_stream_send(c, q, strlen(q)) < 0)
        return -1;
    ssize_t n = weft_stream_recv_until(c, reply, max - 1, "\n", 1);
    if (n < 0)
        return -1;
    reply[n] = '\0';
    return 0;
}

struct turn {
    weft_sequencer *seq;
    unsigned position;
    const char *word;
};

static int take_turn(void *arg)
{
    struct turn *t = arg;
    int rc = weft_sequencer_begin(t->seq, t->position);
    if (rc < 0)
        return rc;
    printf("%s\n", t->word);
    weft_sequencer_end(t->seq, t->position);
    return 0;
}

static int root(void *arg)
{
    (void)arg;
    char reply[128];
    int bad = 0;

    /* 1. the server over memory, one byte per receive */
    weft_stream *client, *server;
    weft_memstream_opts o = {.chunk = 1};
    if (weft_memstream_pair(&client, &server, &o) < 0)
        return 1;
    weft_group g;
    weft_group_enter(&g);
    weft_group_spawn(&g, upper_server, server);
    const char *qs[] = {"hello\n", "world\n"};
    for (int i = 0; i < 2; i++) {
        bad |= ask(client, qs[i], reply, sizeof reply);
        printf("%s\n", reply);
    }
    /* every other task is now waiting: the server waits for a line */
    weft_wait_all_tasks_blocked();
    if (weft_stream_buffered(client) == 0)
        printf("server idle, nothing buffered\n");
    weft_stream_send_eof(client);
    bad |= weft_group_exit(&g, 0);
    weft_stream_close(client);
    weft_stream_close(server);

    /* 2. turns in a fixed order, whatever order the tasks start in */
    weft_sequencer seq;
    weft_sequencer_init(&seq);
    struct turn second = {&seq, 1, "second"}, first = {&seq, 0, "first"};
    weft_group_enter(&g);
    weft_group_spawn(&g, take_turn, &second);
    weft_group_spawn(&g, take_turn, &first);
    bad |= weft_group_exit(&g, 0);

    /* 3. the same server on a real port */
    int port = weft_free_port();
    weft_listener *l;
    weft_stream *c, *s;
    if (port < 0 || weft_tcp_listen(&l, "127.0.0.1", (uint16_t)port) < 0)
        return 1;
    if (weft_tcp_connect(&c, "127.0.0.1", (uint16_t)port) < 0 ||
        weft_listener_accept(l, &s) < 0)
        return 1;
    weft_group_enter(&g);
    weft_group_spawn(&g, upper_server, s);
    bad |= ask(c, "ping\n", reply, sizeof reply);
    printf("TCP on a free port: %s\n", reply);
    weft_stream_send_eof(c);
    bad |= weft_group_exit(&g, 0);
    weft_stream_close(c);
    weft_stream_close(s);
    weft_listener_close(l);
    return bad ? 1 : 0;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc != 0)
        fprintf(stderr, "weft_run: %s\n", weft_strerror(rc));
    return rc == 0 ? 0 : 1;
}
