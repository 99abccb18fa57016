/* SPDX-License-Identifier: MIT */
/*
 * tls_fetch.c - fetch a page over HTTPS: connect, wrap the connection in
 * TLS (SNI and the certificate checked against the host name), send a
 * GET, read the response; print its status line and the length of its
 * body.
 *
 *   example_tls_fetch [--ca CA.pem] HOST [PORT [PATH]]
 *
 * Without --ca the server is verified against the system's trust store.
 * It prints, for instance:
 *
 *     TLSv1.3 TLS_AES_256_GCM_SHA384, ALPN http/1.1
 *     HTTP/1.1 200 OK
 *     body: 6 bytes
 *
 * and exits 0 when the status is 2xx; 1 otherwise, with the reason
 * (weft_tls_error's text for a certificate that does not verify).
 * tls-check.sh runs it against example_https_hello.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <weft.h>
#include <weft/tls.h>

#define FETCH_TIMEOUT (30 * WEFT_SEC) /* the whole fetch */

struct fetch {
    const char *ca, *host, *path;
    int port;
};

static void report(const char *what, int rc)
{
    char why[256];
    weft_tls_error(why, sizeof why);
    fprintf(stderr, "tls_fetch: %s: %s%s%s\n", what, weft_strerror(rc),
            why[0] ? ": " : "", why);
}

/* The Content-Length of a response head, or -1. */
static long content_length(const char *head)
{
    for (const char *p = strstr(head, "\r\n"); p; p = strstr(p + 2, "\r\n"))
        if (strncasecmp(p + 2, "Content-Length:", 15) == 0)
            return strtol(p + 17, NULL, 10);
    return -1;
}

/* The body: Content-Length bytes, or everything up to the end. */
static ssize_t read_body(weft_stream *s, long length)
{
    char buf[16384];
    ssize_t total = 0, n;
    while (length < 0 || total < length) {
        size_t want = sizeof buf;
        if (length >= 0 && (size_t)(length - total) < want)
            want = (size_t)(length - total);
        n = weft_stream_recv(s, buf, want);
        if (n == 0 && length < 0)
            break; /* the end of the body: the server closed */
        if (n <= 0)
            return n < 0 ? n : -ENODATA;
        total += n;
    }
    return total;
}

static int get(weft_stream *s, const struct fetch *f)
{
    printf("%s %s, ALPN %s\n", weft_tls_version(s), weft_tls_cipher(s),
           weft_tls_alpn(s) ? weft_tls_alpn(s) : "none");
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET %s HTTP/1.1\r\nHost: %s\r\n"
                     "Connection: close\r\n\r\n",
                     f->path, f->host);
    if (n < 0 || (size_t)n >= sizeof req)
        return -EINVAL;
    ssize_t rc = weft_stream_send(s, req, (size_t)n);
    if (rc < 0)
        return (int)rc;
    char head[16384];
    rc = weft_stream_recv_until(s, head, sizeof head - 1, "\r\n\r\n", 4);
    if (rc < 0)
        return (int)rc;
    head[rc] = '\0';
    printf("%.*s\n", (int)strcspn(head, "\r\n"), head);
    ssize_t body = read_body(s, content_length(head));
    if (body < 0)
        return (int)body;
    printf("body: %zd bytes\n", body);
    return strncmp(head + 8, " 2", 2) == 0 ? 0 : 1;
}

static int fetch(void *arg)
{
    struct fetch *f = arg;
    weft_tls_config *cfg;
    int rc = weft_tls_config_client(&cfg, f->ca);
    if (rc < 0) {
        report(f->ca ? f->ca : "the trust store", rc);
        return rc;
    }
    const char *protocols[] = {"http/1.1"};
    weft_tls_config_alpn(cfg, protocols, 1);
    /* "Connection: close" and a server that closes without close_notify
     * after the body: HTTP/1.1's lengths tell a whole body apart from a
     * cut one, so an end without close_notify may count as the end. */
    weft_tls_config_allow_truncation(cfg, true);

    weft_scope sc;
    weft_fail_after(&sc, FETCH_TIMEOUT);
    weft_stream *tcp, *s = NULL;
    rc = weft_tcp_connect(&tcp, f->host, (uint16_t)f->port);
    if (rc < 0)
        report("connect", rc);
    else if ((rc = weft_tls_wrap(&s, tcp, cfg, f->host)) < 0)
        report("handshake", rc); /* -EKEYREJECTED: it did not verify */
    else if ((rc = get(s, f)) < 0)
        report("request", rc);
    if (s)
        weft_stream_close(s);
    rc = weft_scope_exit(&sc, rc);
    weft_tls_config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    struct fetch f = {.port = 443, .path = "/"};
    int i = 1;
    if (i + 1 < argc && strcmp(argv[i], "--ca") == 0) {
        f.ca = argv[i + 1];
        i += 2;
    }
    if (i >= argc) {
        fprintf(stderr, "usage: %s [--ca CA.pem] HOST [PORT [PATH]]\n",
                argv[0]);
        return 2;
    }
    f.host = argv[i];
    if (i + 1 < argc)
        f.port = atoi(argv[i + 1]);
    if (i + 2 < argc)
        f.path = argv[i + 2];
    int rc = weft_run(fetch, &f, NULL);
    if (rc == -ETIMEDOUT)
        fprintf(stderr, "tls_fetch: no answer in time\n");
    return rc == 0 ? 0 : 1;
}
