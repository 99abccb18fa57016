/* SPDX-License-Identifier: MIT */
/*
 * perf/tls_bulk.c - TLS bulk throughput over loopback: a weft TLS client
 * sends N bytes in fixed-size sends to a weft TLS server, which receives
 * them all; the two run on two cores (weft_run_cores(2, ...)), as the
 * two processes of `openssl s_client | openssl s_server` do, its
 * baseline in perf/tls-bench.
 *
 *   tls_bulk --cert CERT.pem --key KEY.pem [--ca CA.pem] [--name NAME]
 *            [-n BYTES] [-b SEND_SIZE] [--plain] [--tls12]
 *
 * --ca (default: the certificate) verifies the server as NAME (default
 * "localhost"); --plain sends over the bare TCP connection instead (what
 * the TLS costs); --tls12 offers TLS 1.2 at most. Prints one line:
 *
 *   RESULT bytes=B secs=S MBps=M send_cpu=S recv_cpu=S version=V cipher=C
 *          ktls=K
 *
 * MBps is 10^6 bytes of payload per second of wall time, from the first
 * send (after the handshake) to the last byte received; send_cpu and
 * recv_cpu are the seconds of CPU each side's thread spent in that time;
 * ktls says where the records were made and read: "send+recv" (both in
 * the kernel), "send" (the sender's kernel encrypts, the receiver's
 * OpenSSL decrypts), "recv", or "none" (WEFT_TLS_KTLS=0 turns it off).
 */
#include <weft.h>
#include <weft/tls.h>

#include <errno.h>
#include <getopt.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *cert, *key, *ca, *name = "localhost";
static size_t total = (size_t)1 << 30;
static size_t chunk = 64 * 1024;
static bool plain, tls12;

struct bulk {
    weft_tls_config *server_cfg, *client_cfg;
    int port;
    double send_cpu, t0; /* the sender's: CPU seconds, its start */
    double recv_cpu, t1; /* the receiver's: CPU seconds, its end */
    char version[32], cipher[64];
    int ktls_send, ktls_recv; /* weft_tls_ktls of the sender, the receiver */
};

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void tls_fail(const char *what, int rc)
{
    char why[256];
    weft_tls_error(why, sizeof why);
    fprintf(stderr, "tls_bulk: %s: %s%s%s\n", what, weft_strerror(rc),
            why[0] ? ": " : "", why[0] ? why : "");
}

/* Core 1: connect, handshake, send total bytes in chunk-sized sends. */
static int sender(void *arg)
{
    struct bulk *b = arg;
    weft_stream *tcp, *s;
    int rc = weft_tcp_connect(&tcp, "127.0.0.1", (uint16_t)b->port);
    if (rc < 0) {
        tls_fail("connect", rc);
        return rc;
    }
    s = tcp;
    if (!plain) {
        rc = weft_tls_wrap(&s, tcp, b->client_cfg, name);
        if (rc < 0) {
            tls_fail("client handshake", rc);
            return rc;
        }
        b->ktls_send = weft_tls_ktls(s);
    }
    char *buf = malloc(chunk);
    if (!buf) {
        weft_stream_close(s);
        return -ENOMEM;
    }
    memset(buf, 'x', chunk);
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    b->t0 = clock_s(CLOCK_MONOTONIC);
    for (size_t sent = 0; sent < total && rc >= 0;) {
        size_t n = total - sent < chunk ? total - sent : chunk;
        ssize_t w = weft_stream_send(s, buf, n);
        if (w < 0)
            rc = (int)w;
        else
            sent += n;
    }
    if (rc >= 0)
        rc = weft_stream_send_eof(s);
    /* Read to the receiver's end before closing: a socket closed with
     * bytes unread (the server's session tickets) resets the connection,
     * and the receiver would see -ECONNRESET instead of our close_notify. */
    while (rc >= 0 && (rc = (int)weft_stream_recv(s, buf, chunk)) > 0)
        ;
    b->send_cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    if (rc < 0)
        tls_fail("send", rc);
    free(buf);
    weft_stream_close(s);
    return rc < 0 ? rc : 0;
}

/* Core 0: accept, handshake, receive to the end. */
static int receive_all(struct bulk *b, weft_stream *conn)
{
    weft_stream *s = conn;
    if (!plain) {
        int rc = weft_tls_wrap(&s, conn, b->server_cfg, NULL);
        if (rc < 0) {
            tls_fail("server handshake", rc);
            return rc;
        }
        snprintf(b->version, sizeof b->version, "%s", weft_tls_version(s));
        snprintf(b->cipher, sizeof b->cipher, "%s", weft_tls_cipher(s));
        b->ktls_recv = weft_tls_ktls(s);
    }
    size_t bufsize = 256 * 1024, got = 0;
    char *buf = malloc(bufsize);
    if (!buf) {
        weft_stream_close(s);
        return -ENOMEM;
    }
    double c0 = clock_s(CLOCK_THREAD_CPUTIME_ID);
    ssize_t n;
    while ((n = weft_stream_recv(s, buf, bufsize)) > 0)
        got += (size_t)n;
    b->t1 = clock_s(CLOCK_MONOTONIC);
    b->recv_cpu = clock_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    free(buf);
    if (n == 0)
        weft_stream_send_eof(s); /* the sender waits for it */
    weft_stream_close(s);
    if (n < 0) {
        tls_fail("receive", (int)n);
        return (int)n;
    }
    if (got != total) {
        fprintf(stderr, "tls_bulk: received %zu of %zu bytes\n", got, total);
        return -EIO;
    }
    return 0;
}

static int app(void *arg)
{
    struct bulk *b = arg;
    if (weft_core_count() < 2) {
        fprintf(stderr, "tls_bulk: needs two cores\n");
        return -EINVAL;
    }
    weft_listener *l;
    int rc = weft_tcp_listen(&l, "127.0.0.1", 0);
    if (rc < 0)
        return rc;
    b->port = weft_listener_port(l);
    weft_group g;
    weft_group_enter(&g);
    rc = weft_group_spawn_on(&g, 1, sender, b);
    weft_stream *conn = NULL;
    if (rc == 0)
        rc = weft_listener_accept(l, &conn);
    weft_listener_close(l);
    if (rc == 0)
        rc = receive_all(b, conn);
    if (rc < 0)
        weft_group_cancel(&g);
    return weft_group_exit(&g, rc);
}

static int make_configs(struct bulk *b)
{
    int rc = weft_tls_config_server(&b->server_cfg, cert, key);
    if (rc < 0) {
        tls_fail("server config", rc);
        return rc;
    }
    rc = weft_tls_config_client(&b->client_cfg, ca ? ca : cert);
    if (rc < 0)
        tls_fail("client config", rc);
    else if (tls12) /* the kernel takes both directions of TLS 1.2 */
        SSL_CTX_set_max_proto_version(weft_tls_config_ssl_ctx(b->client_cfg),
                                      TLS1_2_VERSION);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option longs[] = {{"cert", required_argument, 0, 'C'},
                                          {"key", required_argument, 0, 'K'},
                                          {"ca", required_argument, 0, 'A'},
                                          {"name", required_argument, 0, 'N'},
                                          {"plain", no_argument, 0, 'P'},
                                          {"tls12", no_argument, 0, 'T'},
                                          {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "n:b:", longs, NULL)) != -1) {
        switch (c) {
        case 'C':
            cert = optarg;
            break;
        case 'K':
            key = optarg;
            break;
        case 'A':
            ca = optarg;
            break;
        case 'N':
            name = optarg;
            break;
        case 'P':
            plain = true;
            break;
        case 'T':
            tls12 = true;
            break;
        case 'n':
            total = strtoull(optarg, NULL, 0);
            break;
        case 'b':
            chunk = strtoull(optarg, NULL, 0);
            break;
        default:
            goto usage;
        }
    }
    if (!cert || !key || chunk == 0)
        goto usage;
    signal(SIGPIPE, SIG_IGN);
    struct bulk b = {.version = "-", .cipher = "-"};
    int rc = make_configs(&b);
    if (rc == 0)
        rc = weft_run_cores(2, app, &b, NULL);
    weft_tls_config_free(b.server_cfg);
    weft_tls_config_free(b.client_cfg);
    if (rc < 0) {
        fprintf(stderr, "tls_bulk: %s\n", weft_strerror(rc));
        return 1;
    }
    double secs = b.t1 - b.t0;
    bool ks = b.ktls_send & WEFT_TLS_KTLS_SEND;
    bool kr = b.ktls_recv & WEFT_TLS_KTLS_RECV;
    printf("RESULT bytes=%zu secs=%.3f MBps=%.0f send_cpu=%.3f "
           "recv_cpu=%.3f version=%s cipher=%s ktls=%s\n",
           total, secs, (double)total / secs / 1e6, b.send_cpu, b.recv_cpu,
           plain ? "plain" : b.version, plain ? "none" : b.cipher,
           ks && kr ? "send+recv"
           : ks     ? "send"
           : kr     ? "recv"
                    : "none");
    return 0;
usage:
    fprintf(stderr, "usage: tls_bulk --cert CERT.pem --key KEY.pem "
                    "[--ca CA.pem] [--name NAME] [-n BYTES] [-b SEND_SIZE] "
                    "[--plain] [--tls12]\n");
    return 2;
}
