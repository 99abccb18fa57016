/* SPDX-License-Identifier: MIT */
/*
 * tests/test_tls.c - TLS streams (weft/tls.h): certificates made at test
 * time by the openssl command (a CA, a server certificate for localhost
 * and 127.0.0.1, an expired one, one for another name, one from an
 * untrusted CA, a second server name for SNI, a client certificate; all
 * ECDSA P-256), then handshakes, verification, close_notify,
 * truncation, resumption, ALPN, and cancellation at many points.
 *
 * Kernel TLS: the kTLS tests run where the kernel has it (skipped
 * elsewhere; scripts/vm-run --modules tls runs them on Debian's kernel):
 * the same scenarios over TCP with the kernel holding the records, in
 * TLS 1.2 (both directions in the kernel) and TLS 1.3 (the send
 * direction, with OpenSSL 3.0), and against a userspace peer.
 */
#include "helpers.h"
#include "net_helpers.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <weft/tls.h>
#include <weft/transport.h>

static char dir[256];

static const char *path(const char *name)
{
    static char buf[8][512];
    static int next;
    char *p = buf[next++ % 8];
    snprintf(p, 512, "%s/%s", dir, name);
    return p;
}

/* The certificates, once for the suite. */
static int make_certs(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/weft-tls.XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    char cmd[4096];
    snprintf(
        cmd, sizeof cmd,
        "set -e; cd '%s'\n"
        "key() { openssl ecparam -name prime256v1 -genkey -noout -out $1; }\n"
        "ca() { key $1.key; openssl req -x509 -new -key $1.key -subj /CN=$1 "
        "-days 30 -out $1.pem; }\n"
        "leaf() { # name ca days san\n"
        "  key $1.key; openssl req -new -key $1.key -subj /CN=$1 -out $1.csr\n"
        "  printf '%%s\\n' \"$4\" >$1.ext\n"
        "  openssl x509 -req -in $1.csr -CA $2.pem -CAkey $2.key "
        "-CAcreateserial -days $3 -extfile $1.ext -out $1.pem; }\n"
        "ca ca; ca evil\n"
        "leaf srv ca 30 subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "leaf alt ca 30 subjectAltName=DNS:alt.example\n"
        "leaf expired ca -1 subjectAltName=DNS:localhost,IP:127.0.0.1\n"
        "leaf wrong ca 30 subjectAltName=DNS:other.example\n"
        "leaf untrusted evil 30 subjectAltName=DNS:localhost\n"
        "leaf client ca 30 extendedKeyUsage=clientAuth\n"
        "leaf rogue evil 30 extendedKeyUsage=clientAuth\n",
        dir);
    FILE *sh = popen("sh >/dev/null 2>&1", "w");
    if (!sh)
        return -1;
    fputs(cmd, sh);
    return pclose(sh) == 0 ? 0 : -1;
}

static int remove_certs(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static weft_tls_config *server_config(const char *name)
{
    char cert[64], key[64];
    snprintf(cert, sizeof cert, "%s.pem", name);
    snprintf(key, sizeof key, "%s.key", name);
    weft_tls_config *c = NULL;
    CHECK_EQ(weft_tls_config_server(&c, path(cert), path(key)), 0);
    return c;
}

static weft_tls_config *client_config(void)
{
    weft_tls_config *c = NULL;
    CHECK_EQ(weft_tls_config_client(&c, path("ca.pem")), 0);
    return c;
}

/* ---- a handshake between two configurations ---- */

enum transport { PAIR, TCP, MEM };

/* A kTLS scenario: the version, and which sides may use the kernel. */
struct kt {
    int version; /* the highest offered: WEFT_TLS_1_2 or _1_3 */
    bool client, server;
};

/* What weft_tls_ktls says of a stream whose side may use the kernel:
 * OpenSSL 3.0 and 3.1 hand the kernel both directions of TLS 1.2 and
 * the send direction of TLS 1.3. */
static int ktls_expected(int version)
{
    const char *env = getenv("WEFT_TLS_KTLS");
    if (!weft_tls_ktls_available() || (env && strcmp(env, "0") == 0))
        return 0;
    bool rx = version == WEFT_TLS_1_2 || OpenSSL_version_num() >= 0x30200000L;
    return WEFT_TLS_KTLS_SEND | (rx ? WEFT_TLS_KTLS_RECV : 0);
}

struct hs {
    weft_tls_config *cc, *sc;
    const char *name;
    enum transport how;
    weft_memstream_opts mem;
    weft_stream *c, *s; /* the TLS streams, or NULL */
    int crc, src;
    weft_stream *sraw;
    weft_time client_deadline; /* 0: none */
    char ctext[256];     /* the client's weft_tls_error, before the server's */
    const struct kt *kt; /* a kTLS scenario: over TCP, checked */
};

/* A kTLS scenario's settings (options already set on a config used
 * before say -EBUSY: they are the same). */
static void kt_apply(struct hs *h)
{
    h->how = TCP;
    h->name = "127.0.0.1";
    SSL_CTX_set_max_proto_version(weft_tls_config_ssl_ctx(h->cc),
                                  h->kt->version);
    SSL_CTX_set_max_proto_version(weft_tls_config_ssl_ctx(h->sc),
                                  h->kt->version);
    (void)weft_tls_config_ktls(h->cc, h->kt->client);
    (void)weft_tls_config_ktls(h->sc, h->kt->server);
}

static void kt_check(struct hs *h)
{
    int v = h->kt->version;
    CHECK_EQ(weft_tls_ktls(h->c), h->kt->client ? ktls_expected(v) : 0);
    CHECK_EQ(weft_tls_ktls(h->s), h->kt->server ? ktls_expected(v) : 0);
    CHECK_STR_EQ(weft_tls_version(h->c),
                 v == WEFT_TLS_1_2 ? "TLSv1.2" : "TLSv1.3");
}

static int server_wrap(void *arg)
{
    struct hs *h = arg;
    h->src = weft_tls_wrap(&h->s, h->sraw, h->sc, NULL);
    return 0;
}

/* Both sides' handshakes at once: the client in this task. */
static void handshake(struct hs *h)
{
    weft_stream *a = NULL, *b = NULL;
    h->c = h->s = NULL;
    if (h->kt)
        kt_apply(h);
    if (h->how == PAIR)
        CHECK_EQ(weft_stream_pair(&a, &b), 0);
    else if (h->how == TCP)
        CHECK_EQ(nh_tcp_pair("127.0.0.1", &a, &b), 0);
    else
        CHECK_EQ(weft_memstream_pair(&a, &b, &h->mem), 0);
    h->sraw = b;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, server_wrap, h), 0);
    weft_scope sc;
    weft_scope_enter(&sc,
                     h->client_deadline ? h->client_deadline : WEFT_FOREVER);
    h->crc = weft_tls_wrap(&h->c, a, h->cc, h->name);
    weft_scope_exit(&sc, 0);
    weft_tls_error(h->ctext, sizeof h->ctext);
    /* A client that failed closed its transport: the server sees it. */
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    if (h->kt && h->c && h->s)
        kt_check(h);
}

static void hs_close(struct hs *h)
{
    if (h->c)
        CHECK_EQ(weft_stream_close(h->c), 0);
    if (h->s)
        CHECK_EQ(weft_stream_close(h->s), 0);
    h->c = h->s = NULL;
}

/* The text a failure left (both sides run on this thread: the client's
 * is kept by handshake(), NULL for the latest). */
static bool error_text_has(const char *text, const char *what)
{
    char buf[256];
    if (!text) {
        weft_tls_error(buf, sizeof buf);
        text = buf;
    }
    if (!CHECK_GT(strlen(text), 0))
        return false;
    if (!strstr(text, what))
        return th_fail_at(__FILE__, __LINE__, "\"%s\" not in \"%s\"", what,
                          text);
    return true;
}

/* ---- bulk transfer ---- */

struct bulk {
    weft_stream *s;
    size_t n;
    int rc;
};

static int bulk_send(void *arg)
{
    struct bulk *b = arg;
    unsigned char *p = nh_pattern(b->n);
    b->rc = (int)weft_stream_send(b->s, p, b->n);
    free(p);
    return 0;
}

static int bulk_recv(void *arg)
{
    struct bulk *b = arg;
    unsigned char *buf = malloc(65536);
    size_t got = 0;
    b->rc = 0;
    while (got < b->n) {
        ssize_t r = weft_stream_recv(b->s, buf, 65536);
        if (r <= 0) {
            b->rc = r ? (int)r : -ENODATA;
            break;
        }
        for (ssize_t i = 0; i < r; i++) {
            if (buf[i] != nh_pattern_byte(got + (size_t)i)) {
                b->rc = -EILSEQ;
                break;
            }
        }
        got += (size_t)r;
    }
    free(buf);
    return 0;
}

/* n bytes from a to b, each checked. */
static void transfer(weft_stream *a, weft_stream *b, size_t n)
{
    struct bulk tx = {a, n, 0}, rx = {b, n, 0};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, bulk_recv, &rx), 0);
    CHECK_EQ(weft_group_spawn(&g, bulk_send, &tx), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(tx.rc, (int)n);
    CHECK_EQ(rx.rc, 0);
}

static int round_trips(void *arg)
{
    struct hs h = {.cc = client_config(),
                   .sc = server_config("srv"),
                   .name = "localhost",
                   .how = *(enum transport *)arg};
    if (h.how == TCP)
        h.name = "127.0.0.1"; /* checked against the IP entry */
    handshake(&h);
    CHECK_EQ(h.crc, 0);
    CHECK_EQ(h.src, 0);
    static const size_t sizes[] = {1, 1000, 16384, 16385, 100000, 16u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        transfer(h.c, h.s, sizes[i]);
        transfer(h.s, h.c, sizes[i] / 2 + 1);
    }
    CHECK_STR_EQ(weft_tls_version(h.c), "TLSv1.3");
    CHECK(weft_tls_cipher(h.s) != NULL);
    CHECK_EQ(weft_tls_ktls(h.c),
             h.how == TCP ? ktls_expected(WEFT_TLS_1_3) : 0);
    CHECK(weft_tls_ssl(h.c) != NULL);
    if (h.how == PAIR) {
        CHECK_STR_EQ(weft_tls_server_name(h.c), "localhost");
        CHECK_STR_EQ(weft_tls_server_name(h.s), "localhost");
    }
    hs_close(&h);
    weft_tls_config_free(h.cc);
    weft_tls_config_free(h.sc);
    return 0;
}

static void test_tls_round_trips_1_byte_to_16_mib_over_a_pair(void **state)
{
    (void)state;
    enum transport how = PAIR;
    run_in_loop(round_trips, &how);
}

static void test_tls_round_trips_over_tcp_checking_an_ip_address(void **state)
{
    (void)state;
    enum transport how = TCP;
    run_in_loop(round_trips, &how);
}

/* ---- verification ---- */

static int rejected(void *arg)
{
    const char *const *w = arg; /* server cert, name, text */
    struct hs h = {
        .cc = client_config(), .sc = server_config(w[0]), .name = w[1]};
    handshake(&h);
    CHECK_EQ(h.crc, -EKEYREJECTED);
    CHECK(h.c == NULL);
    error_text_has(h.ctext, w[2]);
    CHECK_NE(h.src, 0); /* the alert, or the end of the transport */
    CHECK(h.s == NULL);
    weft_tls_config_free(h.cc);
    weft_tls_config_free(h.sc);
    return 0;
}

static void test_tls_client_rejects_a_name_mismatch(void **state)
{
    (void)state;
    const char *w[] = {"wrong", "localhost", "hostname mismatch"};
    run_in_loop(rejected, w);
}

static void test_tls_client_rejects_an_untrusted_chain(void **state)
{
    (void)state;
    const char *w[] = {"untrusted", "localhost", "certificate verify failed"};
    run_in_loop(rejected, w);
}

static void test_tls_client_rejects_an_expired_certificate(void **state)
{
    (void)state;
    const char *w[] = {"expired", "localhost", "expired"};
    run_in_loop(rejected, w);
}

static int verify_off(void *arg)
{
    struct hs h = {.cc = client_config(), .sc = server_config("untrusted")};
    CHECK_EQ(weft_tls_config_verify(h.cc, false), 0);
    handshake(&h); /* no name at all, an untrusted certificate */
    CHECK_EQ(h.crc, 0);
    CHECK_EQ(h.src, 0);
    transfer(h.c, h.s, 5000);
    hs_close(&h);
    weft_tls_config_free(h.cc);
    weft_tls_config_free(h.sc);
    return 0;
}

static void test_tls_verify_off_accepts_any_certificate(void **state)
{
    (void)state;
    run_in_loop(verify_off, NULL);
}

/* ---- client certificates ---- */

/* A TLS 1.3 client finishes its handshake before the server has read its
 * certificate: the refusal comes with its first receive. */
static int client_refused(struct hs *h)
{
    if (h->crc < 0)
        return h->crc;
    char b;
    ssize_t r = weft_stream_recv(h->c, &b, 1);
    return (int)r;
}

static int client_cert(void *arg)
{
    const char *which = arg; /* NULL: none */
    struct hs h = {
        .cc = client_config(), .sc = server_config("srv"), .name = "localhost"};
    CHECK_EQ(weft_tls_config_client_ca(h.sc, path("ca.pem")), 0);
    if (which) {
        char cert[64], key[64];
        snprintf(cert, sizeof cert, "%s.pem", which);
        snprintf(key, sizeof key, "%s.key", which);
        CHECK_EQ(weft_tls_config_certificate(h.cc, path(cert), path(key)), 0);
    }
    handshake(&h);
    if (which && strcmp(which, "client") == 0) {
        CHECK_EQ(h.crc, 0);
        CHECK_EQ(h.src, 0);
        transfer(h.c, h.s, 3000);
        transfer(h.s, h.c, 3000);
    } else {
        CHECK_EQ(h.src, which ? -EKEYREJECTED : -EPROTO);
        CHECK_EQ(client_refused(&h), -EPROTO);
        error_text_has(NULL, "alert");
    }
    hs_close(&h);
    weft_tls_config_free(h.cc);
    weft_tls_config_free(h.sc);
    return 0;
}

static void test_tls_server_requires_a_client_certificate(void **state)
{
    (void)state;
    run_in_loop(client_cert, NULL);
}

static void
test_tls_server_rejects_a_client_certificate_of_another_ca(void **state)
{
    (void)state;
    run_in_loop(client_cert, "rogue");
}

static void test_tls_mutual_tls_succeeds(void **state)
{
    (void)state;
    run_in_loop(client_cert, "client");
}

/* ---- ALPN ---- */

static int alpn(void *arg)
{
    bool agree = arg != NULL;
    struct hs h = {
        .cc = client_config(), .sc = server_config("srv"), .name = "localhost"};
    const char *theirs[] = {"h2", "http/1.1"};
    const char *mine_ok[] = {"http/1.1", "h2"};
    const char *mine_no[] = {"spdy/1"};
    CHECK_EQ(weft_tls_config_alpn(h.sc, theirs, 2), 0);
    CHECK_EQ(
        weft_tls_config_alpn(h.cc, agree ? mine_ok : mine_no, agree ? 2 : 1),
        0);
    handshake(&h);
    if (agree) {
        CHECK_EQ(h.crc, 0);
        CHECK_STR_EQ(weft_tls_alpn(h.c), "h2"); /* the server's order */
        CHECK_STR_EQ(weft_tls_alpn(h.s), "h2");
    } else {
        CHECK_EQ(h.src, -EPROTO);
        CHECK_EQ(h.crc, -EPROTO);
        error_text_has(h.ctext, "no application protocol");
    }
    hs_close(&h);
    weft_tls_config_free(h.cc);
    weft_tls_config_free(h.sc);
    return 0;
}

static void test_tls_alpn_agreed_in_the_servers_order(void **state)
{
    (void)state;
    run_in_loop(alpn, "yes");
}

static void test_tls_alpn_refused_fails_both_handshakes(void **state)
{
    (void)state;
    run_in_loop(alpn, NULL);
}

/* ---- close_notify and truncation ---- */

static int close_notify(void *arg)
{
    struct hs h = {.cc = client_config(),
                   .sc = server_config("srv"),
                   .name = "localhost",
                   .kt = arg};
    handshake(&h);
    char buf[16];
    /* client -> server: data, close_notify; then the server still sends */
    CHECK_EQ(weft_stream_send(h.c, "hello", 5), 5);
    CHECK_EQ(weft_stream_send_eof(h.c), 0);
    CHECK_EQ(weft_stream_send(h.c, "x", 1), -EPIPE);
    CHECK_EQ(weft_stream_recv_exactly(h.s, buf, 5), 5);
    CHECK_EQ(weft_stream_recv(h.s, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_recv(h.s, buf, sizeof buf), 0);
    CHECK_EQ(weft_stream_send(h.s, "back", 4), 4);
    CHECK_EQ(weft_stream_recv_exactly(h.c, buf, 4), 4);
    CHECK_EQ(memcmp(buf, "back", 4), 0);
    /* and the other way */
    CHECK_EQ(weft_stream_send_eof(h.s), 0);
    CHECK_EQ(weft_stream_recv(h.c, buf, sizeof buf), 0);
    hs_close(&h);
    weft_tls_config_free(h.cc);
    weft_tls_config_free(h.sc);
    return 0;
}

static void test_tls_close_notify_both_ways(void **state)
{
    (void)state;
    run_in_loop(close_notify, NULL);
}

static int truncation(void *arg)
{
    bool allow = arg != NULL;
    struct hs h = {
        .cc = client_config(), .sc = server_config("srv"), .name = "localhost"};
    if (allow)
        CHECK_EQ(weft_tls_config_allow_truncation(h.cc, true), 0);
    handshake(&h);
    CHECK_EQ(weft_stream_send(h.s, "abc", 3), 3);
    /* The server's transport ends without close_notify: a raw close of
     * its socket under it. */
    int fd = weft_stream_fd(h.s);
    CHECK_GE(fd, 0);
    CHECK_EQ(shutdown(fd, SHUT_WR), 0);
    char buf[8];
    CHECK_EQ(weft_stream_recv_exactly(h.c, buf, 3), 3);
    CHECK_EQ(weft_stream_recv(h.c, buf, sizeof buf), allow ? 0 : -EPIPE);
    hs_close(&h);
    weft_tls_config_free(h.cc);
    weft_tls_config_free(h.sc);
    return 0;
}

static void test_tls_truncation_without_close_notify_is_epipe(void **state)
{
    (void)state;
    run_in_loop(truncation, NULL);
}

static void test_tls_allow_truncation_makes_it_an_end(void **state)
{
    (void)state;
    run_in_loop(truncation, "allow");
}

/* ---- resumption, SNI ---- */

static int resumption(void *arg)
{
    weft_tls_config *cc = client_config(), *sc = server_config("srv");
    for (int i = 0; i < 2; i++) {
        struct hs h = {.cc = cc, .sc = sc, .name = "localhost", .kt = arg};
        handshake(&h);
        CHECK_EQ(h.crc, 0);
        CHECK_EQ(weft_tls_resumed(h.c), i == 1);
        CHECK_EQ(weft_tls_resumed(h.s), i == 1);
        /* The client takes its tickets in with what it receives. */
        transfer(h.s, h.c, 10);
        CHECK_EQ(weft_tls_config_verify(cc, false), -EBUSY);
        hs_close(&h);
    }
    weft_tls_config_free(cc);
    weft_tls_config_free(sc);
    return 0;
}

static void test_tls_second_connection_is_resumed(void **state)
{
    (void)state;
    run_in_loop(resumption, NULL);
}

static int sni(void *arg)
{
    weft_tls_config *cc = client_config(), *sc = server_config("srv");
    CHECK_EQ(weft_tls_config_certificate(sc, path("alt.pem"), path("alt.key")),
             0);
    const char *names[] = {"alt.example", "localhost"};
    for (int i = 0; i < 2; i++) {
        struct hs h = {.cc = cc, .sc = sc, .name = names[i]};
        handshake(&h);
        CHECK_EQ(h.crc, 0); /* verified against the name: the right one */
        CHECK_STR_EQ(weft_tls_server_name(h.s), names[i]);
        hs_close(&h);
    }
    weft_tls_config_free(cc);
    weft_tls_config_free(sc);
    return 0;
}

static void test_tls_sni_chooses_the_certificate(void **state)
{
    (void)state;
    run_in_loop(sni, NULL);
}

/* ---- the stream layer over TLS ---- */

struct sendv_job {
    weft_stream *s;
    const struct iovec *iov;
    int n;
    ssize_t rc;
};

static int sendv_task(void *arg)
{
    struct sendv_job *j = arg;
    j->rc = weft_stream_sendv(j->s, j->iov, j->n);
    return 0;
}

static int buffered(void *arg)
{
    struct hs h = {
        .cc = client_config(), .sc = server_config("srv"), .name = "localhost"};
    handshake(&h);
    struct iovec iov[3] = {
        {"GET / HTTP/1.1\r\n", 16}, {"Host: x\r\n\r\n", 11}, {"body", 4}};
    CHECK_EQ(weft_stream_sendv(h.c, iov, 3), 31);
    char buf[64];
    CHECK_EQ(weft_stream_recv_until(h.s, buf, sizeof buf, "\r\n", 2), 14);
    CHECK_EQ(memcmp(buf, "GET / HTTP/1.1", 14), 0);
    CHECK_EQ(weft_stream_recv_until(h.s, buf, sizeof buf, "\r\n\r\n", 4), 7);
    CHECK_EQ(weft_stream_recv_exactly(h.s, buf, 4), 4);
    CHECK_EQ(memcmp(buf, "body", 4), 0);
    /* A large sendv: pieces of every size, in order. */
    size_t n = 300000;
    unsigned char *p = nh_pattern(n);
    struct iovec big[5] = {{p, 1},
                           {p + 1, 99},
                           {p + 100, 200000},
                           {p + 200100, 7},
                           {p + 200107, n - 200107}};
    unsigned char *got = malloc(n);
    struct sendv_job job = {h.s, big, 5, 0};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, sendv_task, &job), 0);
    CHECK_EQ(weft_stream_recv_exactly(h.c, got, n), (ssize_t)n);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(job.rc, (ssize_t)n);
    CHECK_EQ(memcmp(got, p, n), 0);
    free(got);
    free(p);
    hs_close(&h);
    weft_tls_config_free(h.cc);
    weft_tls_config_free(h.sc);
    return 0;
}

static void test_tls_recv_until_recv_exactly_and_sendv(void **state)
{
    (void)state;
    run_in_loop(buffered, NULL);
}

static int duplex(void *arg)
{
    struct hs h = {
        .cc = client_config(), .sc = server_config("srv"), .name = "localhost"};
    handshake(&h);
    size_t n = 8u << 20;
    struct bulk a = {h.c, n, 0}, b = {h.s, n, 0}, c = {h.s, n, 0},
                d = {h.c, n, 0};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, bulk_send, &a), 0);
    CHECK_EQ(weft_group_spawn(&g, bulk_recv, &b), 0);
    CHECK_EQ(weft_group_spawn(&g, bulk_send, &c), 0);
    CHECK_EQ(weft_group_spawn(&g, bulk_recv, &d), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(a.rc, (int)n);
    CHECK_EQ(c.rc, (int)n);
    CHECK_EQ(b.rc, 0);
    CHECK_EQ(d.rc, 0);
    hs_close(&h);
    weft_tls_config_free(h.cc);
    weft_tls_config_free(h.sc);
    return 0;
}

static void test_tls_full_duplex_bulk_with_a_receiver_and_a_sender(void **state)
{
    (void)state;
    run_in_loop(duplex, NULL);
}

/* ---- cancellation ---- */

static int cancelled_handshakes(void *arg)
{
    weft_tls_config *cc = client_config(), *sc = server_config("srv");
    int done = 0, cancelled = 0;
    /* A memory stream with a delay: each deadline lands at another step
     * of the handshake (the client's wrap is the one cancelled). */
    for (int i = 0; i < 60; i++) {
        struct hs h = {.cc = cc,
                       .sc = sc,
                       .name = "localhost",
                       .how = MEM,
                       .mem = {.delay = 100 * WEFT_USEC}};
        /* Deadlines from 0 to about 30 ms (slow builds too); the last
         * run has none. */
        h.client_deadline =
            i < 59 ? weft_now() + (weft_time)i * i * 8 * WEFT_USEC : 0;
        handshake(&h);
        if (h.crc == 0) {
            CHECK_EQ(h.src, 0);
            done++;
            transfer(h.c, h.s, 100);
        } else {
            CHECK_EQ(h.crc, -ECANCELED);
            CHECK(h.c == NULL);
            cancelled++;
        }
        hs_close(&h);
    }
    CHECK_GT(done, 0);
    CHECK_GT(cancelled, 0);
    weft_tls_config_free(cc);
    weft_tls_config_free(sc);
    return 0;
}

static void test_tls_handshake_cancelled_at_many_points(void **state)
{
    (void)state;
    run_in_loop(cancelled_handshakes, NULL);
}

static int cancelled_receives(void *arg)
{
    struct hs h = {.cc = client_config(),
                   .sc = server_config("srv"),
                   .name = "localhost",
                   .how = MEM,
                   .mem = {.chunk = 700, .delay = 50 * WEFT_USEC},
                   .kt = arg};
    handshake(&h);
    size_t n = 400000;
    struct bulk tx = {h.s, n, 0};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, bulk_send, &tx), 0);
    unsigned char buf[5000];
    size_t got = 0;
    int cancels = 0;
    unsigned seed = 7;
    while (got < n) {
        weft_scope s;
        weft_scope_enter(&s, weft_now() + (rand_r(&seed) % 300) * WEFT_USEC);
        ssize_t r = weft_stream_recv(h.c, buf, 1 + rand_r(&seed) % 5000);
        weft_scope_exit(&s, 0);
        if (r == -ECANCELED) {
            cancels++;
            continue;
        }
        if (!CHECK_GT(r, 0))
            break;
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] != nh_pattern_byte(got + (size_t)i)) {
                th_fail_at(__FILE__, __LINE__, "a byte lost or changed");
                got = n;
                break;
            }
        got += (size_t)r;
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(tx.rc, (int)n);
    CHECK_GT(cancels, 0);
    hs_close(&h);
    weft_tls_config_free(h.cc);
    weft_tls_config_free(h.sc);
    return 0;
}

static void
test_tls_receive_cancelled_at_random_points_loses_nothing(void **state)
{
    (void)state;
    run_in_loop(cancelled_receives, NULL);
}

static int cancelled_send(void *arg)
{
    struct hs h = {.cc = client_config(),
                   .sc = server_config("srv"),
                   .name = "localhost",
                   .kt = arg};
    handshake(&h);
    /* Nobody receives: the send blocks once the socket buffers fill. */
    size_t n = 16u << 20;
    unsigned char *p = nh_pattern(n);
    weft_scope s;
    weft_move_on_after(&s, 50 * WEFT_MSEC);
    CHECK_EQ(weft_stream_send(h.c, p, n), -ECANCELED);
    weft_scope_exit(&s, 0);
    CHECK_EQ(weft_stream_send(h.c, p, 1), -EPIPE);
    CHECK_EQ(weft_stream_send_eof(h.c), -EPIPE);
    /* A send cancelled before it encrypts anything leaves it usable. */
    weft_scope_enter(&s, weft_now() - 1);
    CHECK_EQ(weft_stream_send(h.s, p, 10), -ECANCELED);
    weft_scope_exit(&s, 0);
    CHECK_EQ(weft_stream_send(h.s, p, 10), 10);
    /* The receiving side of the broken sender still works. */
    char buf[10];
    CHECK_EQ(weft_stream_recv_exactly(h.c, buf, 10), 10);
    free(p);
    hs_close(&h);
    weft_tls_config_free(h.cc);
    weft_tls_config_free(h.sc);
    return 0;
}

static void test_tls_cancelled_send_breaks_the_send_side(void **state)
{
    (void)state;
    run_in_loop(cancelled_send, NULL);
}

struct blocked {
    weft_stream *s;
    bool send;
    ssize_t rc;
};

static int blocked_call(void *arg)
{
    struct blocked *b = arg;
    static unsigned char big[1 << 22];
    char c;
    b->rc = b->send ? weft_stream_send(b->s, big, sizeof big)
                    : weft_stream_recv(b->s, &c, 1);
    return 0;
}

static int close_blocked(void *arg)
{
    struct hs h = {.cc = client_config(),
                   .sc = server_config("srv"),
                   .name = "localhost",
                   .kt = arg};
    handshake(&h);
    struct blocked r = {h.c, false, 1}, w = {h.c, true, 1};
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, blocked_call, &r), 0);
    CHECK_EQ(weft_group_spawn(&g, blocked_call, &w), 0);
    CHECK_EQ(weft_wait_all_tasks_blocked(), 0);
    CHECK_EQ(weft_stream_close(h.c), 0);
    h.c = NULL;
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(r.rc, -EBADF);
    CHECK_EQ(w.rc, -EBADF);
    hs_close(&h);
    weft_tls_config_free(h.cc);
    weft_tls_config_free(h.sc);
    return 0;
}

static void test_tls_close_ends_a_blocked_recv_and_send(void **state)
{
    (void)state;
    run_in_loop(close_blocked, NULL);
}

/* ---- arguments, options, other streams ---- */

static int arguments(void *arg)
{
    weft_tls_config *cc = client_config(), *sc = server_config("srv");
    weft_stream *a, *b, *out = (weft_stream *)1;
    CHECK_EQ(weft_stream_pair(&a, &b), 0);
    /* A verifying client needs a name; the stream is closed anyway. */
    CHECK_EQ(weft_tls_wrap(&out, a, cc, NULL), -EINVAL);
    CHECK(out == NULL);
    CHECK_EQ(weft_tls_wrap(&out, b, sc, "localhost"), -EINVAL);
    CHECK_EQ(weft_tls_wrap(&out, NULL, sc, NULL), -EINVAL);
    CHECK_EQ(weft_stream_pair(&a, &b), 0);
    CHECK_EQ(weft_tls_wrap(NULL, a, sc, NULL), -EINVAL);
    CHECK_EQ(weft_tls_wrap(&out, b, NULL, NULL), -EINVAL);
    /* A server asked to verify clients needs their CA. */
    CHECK_EQ(weft_tls_config_verify(sc, true), 0);
    CHECK_EQ(weft_stream_pair(&a, &b), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    CHECK_EQ(weft_tls_wrap(&out, a, sc, NULL), -EINVAL);
    /* Options: the other side's, bad values. */
    CHECK_EQ(weft_tls_config_client_ca(cc, path("ca.pem")), -EINVAL);
    CHECK_EQ(weft_tls_config_min_version(cc, 0x0301), -EINVAL);
    CHECK_EQ(weft_tls_config_min_version(cc, WEFT_TLS_1_3), 0);
    CHECK_EQ(weft_tls_config_alpn(cc, NULL, 1), -EINVAL);
    const char *empty[] = {""};
    CHECK_EQ(weft_tls_config_alpn(cc, empty, 1), -EINVAL);
    CHECK_EQ(weft_tls_config_certificate(cc, path("none.pem"), path("x")),
             -ENOENT);
    CHECK(weft_tls_config_ssl_ctx(cc) != NULL);
    /* A stream that is not TLS. */
    CHECK_EQ(weft_stream_pair(&a, &b), 0);
    CHECK(weft_tls_alpn(a) == NULL);
    CHECK(weft_tls_version(a) == NULL);
    CHECK(weft_tls_ssl(a) == NULL);
    CHECK(!weft_tls_resumed(a));
    CHECK_EQ(weft_tls_ktls(a), 0);
    CHECK(weft_tls_server_name(NULL) == NULL);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    weft_tls_config_free(cc);
    weft_tls_config_free(sc);
    weft_tls_config_free(NULL);
    return 0;
}

static void test_tls_arguments_and_options(void **state)
{
    (void)state;
    run_in_loop(arguments, NULL);
    weft_tls_config *c = NULL;
    weft_stream *out;
    assert_int_equal(weft_tls_wrap(&out, NULL, NULL, NULL), -EPERM);
    assert_int_equal(weft_tls_config_client(NULL, NULL), -EINVAL);
    assert_int_equal(weft_tls_config_client(&c, path("missing.pem")), -ENOENT);
    assert_int_equal(
        weft_tls_config_server(&c, path("srv.pem"), path("alt.key")),
        -EPROTO); /* a key of another certificate */
    char buf[8];
    assert_true(weft_tls_error(buf, sizeof buf) > 0);
    assert_int_equal(strlen(buf), 7); /* truncated, terminated */
}

/* ---- kernel TLS ---- */

/* Whether this kernel takes the "tls" ULP on a connected TCP socket, asked
 * here without weft (the first ask loads the module). */
static int kernel_has_tls_ulp(void *arg)
{
    bool *has = arg;
    weft_stream *a, *b;
    CHECK_EQ(nh_tcp_pair("127.0.0.1", &a, &b), 0);
    *has = setsockopt(weft_stream_fd(a), SOL_TCP, TCP_ULP, "tls", 3) == 0;
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    return 0;
}

static int ktls_default(void *arg)
{
    (void)arg;
    /* Over TCP each side says what the kernel took (nothing where it has
     * no TLS); over a Unix socket, a memory stream, or with the option
     * off, nothing. */
    static const struct kt both = {WEFT_TLS_1_3, true, true};
    static const struct kt off = {WEFT_TLS_1_3, false, false};
    const struct kt *modes[] = {&both, &off};
    for (int i = 0; i < 2; i++) {
        struct hs h = {
            .cc = client_config(), .sc = server_config("srv"), .kt = modes[i]};
        handshake(&h);
        CHECK_EQ(h.crc, 0);
        transfer(h.c, h.s, 1000);
        transfer(h.s, h.c, 1000);
        hs_close(&h);
        weft_tls_config_free(h.cc);
        weft_tls_config_free(h.sc);
    }
    struct hs p = {
        .cc = client_config(), .sc = server_config("srv"), .name = "localhost"};
    handshake(&p);
    CHECK_EQ(weft_tls_ktls(p.c) | weft_tls_ktls(p.s), 0);
    hs_close(&p);
    weft_tls_config_free(p.cc);
    weft_tls_config_free(p.sc);
    return 0;
}

static void test_tls_ktls_available_says_what_the_kernel_has(void **state)
{
    (void)state;
    bool has = false;
    run_in_loop(kernel_has_tls_ulp, &has);
    assert_int_equal(weft_tls_ktls_available(), has);
    run_in_loop(ktls_default, NULL);
}

static void need_ktls(void)
{
    if (!weft_tls_ktls_available()) {
        print_message("no kernel TLS here (no \"tls\" TCP ULP): skipped\n");
        skip();
    }
}

static const struct kt kt12 = {WEFT_TLS_1_2, true, true};
static const struct kt kt13 = {WEFT_TLS_1_3, true, true};

static int ktls_round_trips(void *arg)
{
    struct hs h = {
        .cc = client_config(), .sc = server_config("srv"), .kt = arg};
    handshake(&h);
    CHECK_EQ(h.crc, 0);
    CHECK_EQ(h.src, 0);
    CHECK_NE(weft_tls_ktls(h.c) | weft_tls_ktls(h.s), 0); /* one side's */
    static const size_t sizes[] = {1, 1000, 16384, 16385, 100000, 16u << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        transfer(h.c, h.s, sizes[i]);
        transfer(h.s, h.c, sizes[i] / 2 + 1);
    }
    /* sendv: a header and a body; recv_until and recv_exactly on top */
    struct iovec iov[2] = {{"HEAD\r\n", 6}, {"body", 4}};
    CHECK_EQ(weft_stream_sendv(h.c, iov, 2), 10);
    char buf[64];
    CHECK_EQ(weft_stream_recv_until(h.s, buf, sizeof buf, "\r\n", 2), 4);
    CHECK_EQ(weft_stream_recv_exactly(h.s, buf, 4), 4);
    CHECK_EQ(memcmp(buf, "body", 4), 0);
    hs_close(&h);
    weft_tls_config_free(h.cc);
    weft_tls_config_free(h.sc);
    return 0;
}

static void test_tls_ktls_round_trips_1_byte_to_16_mib(void **state)
{
    (void)state;
    need_ktls();
    run_in_loop(ktls_round_trips, (void *)&kt13);
    run_in_loop(ktls_round_trips, (void *)&kt12);
}

static void test_tls_ktls_close_notify_both_ways(void **state)
{
    (void)state;
    need_ktls();
    run_in_loop(close_notify, (void *)&kt13);
    run_in_loop(close_notify, (void *)&kt12);
}

static void test_tls_ktls_cancelled_receive_loses_nothing(void **state)
{
    (void)state;
    need_ktls();
    run_in_loop(cancelled_receives, (void *)&kt13);
    run_in_loop(cancelled_receives, (void *)&kt12);
}

static void test_tls_ktls_cancelled_send_breaks_the_send_side(void **state)
{
    (void)state;
    need_ktls();
    run_in_loop(cancelled_send, (void *)&kt13);
    run_in_loop(cancelled_send, (void *)&kt12);
    run_in_loop(close_blocked, (void *)&kt12);
}

/* A kTLS side against a userspace one, each way, both versions: bulk
 * both ways, then close_notify both ways. */
static void test_tls_ktls_interoperates_with_a_userspace_peer(void **state)
{
    (void)state;
    need_ktls();
    static const struct kt modes[] = {{WEFT_TLS_1_3, true, false},
                                      {WEFT_TLS_1_3, false, true},
                                      {WEFT_TLS_1_2, true, false},
                                      {WEFT_TLS_1_2, false, true}};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        run_in_loop(ktls_round_trips, (void *)&modes[i]);
        run_in_loop(close_notify, (void *)&modes[i]);
    }
}

static void test_tls_ktls_resumption_still_works(void **state)
{
    (void)state;
    need_ktls();
    run_in_loop(resumption, (void *)&kt13);
    run_in_loop(resumption, (void *)&kt12);
}

/* A TLS 1.3 peer that asks for a key update: the kernel's send keys
 * cannot follow (Linux 6.1), so the kTLS side's next send says -EPROTO
 * and why; what came before it was received. */
static int key_update(void *arg)
{
    (void)arg;
    static const struct kt mode = {WEFT_TLS_1_3, true, false};
    struct hs h = {
        .cc = client_config(), .sc = server_config("srv"), .kt = &mode};
    handshake(&h);
    CHECK_EQ(h.crc, 0);
    CHECK_EQ(SSL_key_update(weft_tls_ssl(h.s), SSL_KEY_UPDATE_REQUESTED), 1);
    CHECK_EQ(weft_stream_send(h.s, "abc", 3), 3); /* the KeyUpdate first */
    char buf[8];
    CHECK_EQ(weft_stream_recv_exactly(h.c, buf, 3), 3);
    CHECK_EQ(weft_stream_send(h.c, "x", 1), -EPROTO);
    error_text_has(NULL, "key update");
    CHECK_EQ(weft_stream_recv(h.c, buf, sizeof buf), -EPROTO); /* broken */
    hs_close(&h);
    weft_tls_config_free(h.cc);
    weft_tls_config_free(h.sc);
    return 0;
}

static void test_tls_ktls_key_update_is_eproto(void **state)
{
    (void)state;
    need_ktls();
    run_in_loop(key_update, NULL);
}

/* ---- one configuration, two threads ---- */

struct shared_cfg {
    weft_tls_config *cc, *sc;
};

static int thread_loop(void *arg)
{
    struct shared_cfg *s = arg;
    for (int i = 0; i < 20; i++) {
        struct hs h = {.cc = s->cc, .sc = s->sc, .name = "localhost"};
        handshake(&h);
        CHECK_EQ(h.crc, 0);
        CHECK_EQ(h.src, 0);
        if (h.c)
            transfer(h.s, h.c, 1000);
        hs_close(&h);
    }
    return 0;
}

static void *thread_main(void *arg)
{
    return (void *)(intptr_t)weft_run(thread_loop, arg, NULL);
}

static void test_tls_one_config_on_two_threads(void **state)
{
    (void)state;
    struct shared_cfg s = {NULL, NULL};
    assert_int_equal(weft_tls_config_client(&s.cc, path("ca.pem")), 0);
    assert_int_equal(
        weft_tls_config_server(&s.sc, path("srv.pem"), path("srv.key")), 0);
    th_reset();
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, thread_main, &s), 0);
    for (int i = 0; i < 2; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_int_equal((intptr_t)rc, 0);
    }
    th_assert_clean();
    weft_tls_config_free(s.cc);
    weft_tls_config_free(s.sc);
}

static const struct CMUnitTest tests[] = {
    NET_TEST(test_tls_round_trips_1_byte_to_16_mib_over_a_pair),
    NET_TEST(test_tls_round_trips_over_tcp_checking_an_ip_address),
    NET_TEST(test_tls_client_rejects_a_name_mismatch),
    NET_TEST(test_tls_client_rejects_an_untrusted_chain),
    NET_TEST(test_tls_client_rejects_an_expired_certificate),
    NET_TEST(test_tls_verify_off_accepts_any_certificate),
    NET_TEST(test_tls_server_requires_a_client_certificate),
    NET_TEST(test_tls_server_rejects_a_client_certificate_of_another_ca),
    NET_TEST(test_tls_mutual_tls_succeeds),
    NET_TEST(test_tls_alpn_agreed_in_the_servers_order),
    NET_TEST(test_tls_alpn_refused_fails_both_handshakes),
    NET_TEST(test_tls_close_notify_both_ways),
    NET_TEST(test_tls_truncation_without_close_notify_is_epipe),
    NET_TEST(test_tls_allow_truncation_makes_it_an_end),
    NET_TEST(test_tls_second_connection_is_resumed),
    NET_TEST(test_tls_sni_chooses_the_certificate),
    NET_TEST(test_tls_recv_until_recv_exactly_and_sendv),
    NET_TEST(test_tls_full_duplex_bulk_with_a_receiver_and_a_sender),
    NET_TEST(test_tls_handshake_cancelled_at_many_points),
    NET_TEST(test_tls_receive_cancelled_at_random_points_loses_nothing),
    NET_TEST(test_tls_cancelled_send_breaks_the_send_side),
    NET_TEST(test_tls_close_ends_a_blocked_recv_and_send),
    NET_TEST(test_tls_arguments_and_options),
    NET_TEST(test_tls_one_config_on_two_threads),
    NET_TEST(test_tls_ktls_available_says_what_the_kernel_has),
    NET_TEST(test_tls_ktls_round_trips_1_byte_to_16_mib),
    NET_TEST(test_tls_ktls_close_notify_both_ways),
    NET_TEST(test_tls_ktls_cancelled_receive_loses_nothing),
    NET_TEST(test_tls_ktls_cancelled_send_breaks_the_send_side),
    NET_TEST(test_tls_ktls_interoperates_with_a_userspace_peer),
    NET_TEST(test_tls_ktls_resumption_still_works),
    NET_TEST(test_tls_ktls_key_update_is_eproto),
};

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, make_certs, remove_certs);
}
