/* SPDX-License-Identifier: MIT */
/*
 * net_echo_client.c - the client of net_echo_server.c: sends each
 * argument as a line and prints what comes back.
 *
 *     example_net_echo_client host port line...
 *     example_net_echo_client localhost 7007 hello world
 *
 * weft_tcp_connect tries every address of host (Happy Eyeballs: IPv6
 * first, the next address 250 ms later or as soon as one fails). The
 * whole conversation has 5 s (weft_fail_after). Exits 0 when every line
 * came back unchanged.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#define MAX_LINE 1024

struct conversation {
    const char *host;
    uint16_t port;
    char **lines;
    int nlines;
};

/* Send each line, read its echo; then end our side and wait for the
 * server to end its own. */
static int talk(weft_stream *s, char **lines, int nlines)
{
    char reply[MAX_LINE + 1];
    for (int i = 0; i < nlines; i++) {
        size_t len = strlen(lines[i]);
        if (len == 0 || len > MAX_LINE)
            return -EINVAL; /* an empty line would mean "bye" */
        ssize_t rc = weft_stream_send(s, lines[i], len);
        if (rc >= 0)
            rc = weft_stream_send(s, "\n", 1);
        if (rc < 0)
            return (int)rc;
        ssize_t n = weft_stream_recv_until(s, reply, MAX_LINE, "\n", 1);
        if (n < 0)
            return (int)n;
        if ((size_t)n != len || memcmp(reply, lines[i], len) != 0)
            return -EPROTO;
        printf("%.*s\n", (int)n, reply);
    }
    int rc = weft_stream_send_eof(s); /* half-close: "no more lines" */
    if (rc < 0)
        return rc;
    char c;
    ssize_t n = weft_stream_recv(s, &c, 1); /* 0: the server closed too */
    return n == 0 ? 0 : (n < 0 ? (int)n : -EPROTO);
}

static int client(void *arg)
{
    struct conversation *cv = arg;
    weft_scope deadline;
    weft_fail_after(&deadline, 5 * WEFT_SEC);

    weft_stream *s;
    int rc = weft_tcp_connect(&s, cv->host, cv->port);
    if (rc == 0) {
        rc = talk(s, cv->lines, cv->nlines);
        weft_stream_close(s);
    }
    return weft_scope_exit(&deadline, rc); /* -ETIMEDOUT after 5 s */
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: %s host port line...\n", argv[0]);
        return 2;
    }
    struct conversation cv = {argv[1], (uint16_t)atoi(argv[2]), argv + 3,
                              argc - 3};
    int rc = weft_run(client, &cv, NULL);
    if (rc < 0) {
        fprintf(stderr, "echo client: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
