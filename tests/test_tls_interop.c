/* SPDX-License-Identifier: MIT */
/*
 * tests/test_tls_interop.c - weft's TLS against peers nobody here wrote:
 * a weft client against `openssl s_server` (TLS 1.3 and 1.2, ALPN, a
 * wrong name), `openssl s_client` against a weft server (a line each way,
 * close_notify from either side), and `curl --cacert` against a weft
 * HTTPS server (skipped where curl is not installed).
 *
 * The certificates are made once per run by the openssl command: a CA
 * and a server certificate for localhost and 127.0.0.1 that it signs
 * (ECDSA P-256). The peers are child processes (weft/process.h); every
 * test checks that no fd is left open.
 */
#include "helpers.h"

#include "net_helpers.h"

#include <weft/process.h>
#include <weft/testing.h>
#include <weft/tls.h>

static char dir[64];
static char ca_pem[128], cert_pem[128], key_pem[128];

/* ---- certificates, made once ---- */

static int sh(const char *cmd)
{
    int st = system(cmd);
    return st == 0 ? 0 : -1;
}

static int make_certificates(void **state)
{
    (void)state;
    if (sh("command -v openssl >/dev/null 2>&1") < 0)
        return 0; /* each test skips */
    snprintf(dir, sizeof dir, "/tmp/weft-tls-interop.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(ca_pem, sizeof ca_pem, "%s/ca.pem", dir);
    snprintf(cert_pem, sizeof cert_pem, "%s/cert.pem", dir);
    snprintf(key_pem, sizeof key_pem, "%s/key.pem", dir);
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && "
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
             "-nodes -keyout ca.key -out ca.pem -days 2 -subj '/CN=weft test "
             "CA' 2>/dev/null && "
             "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes "
             "-keyout key.pem -out req.pem -subj /CN=localhost 2>/dev/null && "
             "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' >ext && "
             "openssl x509 -req -in req.pem -CA ca.pem -CAkey ca.key "
             "-CAcreateserial -days 2 -extfile ext -out cert.pem 2>/dev/null",
             dir);
    return sh(cmd);
}

static int remove_certificates(void **state)
{
    (void)state;
    if (dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        sh(cmd);
    }
    return 0;
}

static void need_openssl(void)
{
    if (!dir[0]) {
        print_message("openssl is not installed\n");
        skip();
    }
}

/* ---- peers ---- */

/* Read lines of a child's stdout until one equals want (without its
 * "\n"); 0, or the error. */
static int wait_line(weft_stream *out, const char *want)
{
    char line[512];
    for (;;) {
        ssize_t n = weft_stream_recv_until(out, line, sizeof line - 1, "\n", 1);
        if (n < 0)
            return (int)n;
        line[n] = '\0';
        if (strcmp(line, want) == 0)
            return 0;
    }
}

/* openssl s_server -rev (every line comes back reversed) on port, for
 * one connection, with extra arguments; ready when it said "ACCEPT". */
static int start_s_server(weft_process **p, int port, const char *const *extra)
{
    char accept[32];
    snprintf(accept, sizeof accept, "127.0.0.1:%d", port);
    const char *argv[24] = {"openssl", "s_server", "-accept", accept,
                            "-cert",   cert_pem,   "-key",    key_pem,
                            "-rev",    "-naccept", "1"};
    size_t n = 11;
    for (; extra && *extra && n < 23; extra++)
        argv[n++] = *extra;
    argv[n] = NULL;
    weft_process_opts o = {.err = {.how = WEFT_STDIO_DEVNULL}};
    int rc = weft_process_open(p, argv, &o);
    if (!CHECK_EQ(rc, 0))
        return rc;
    rc = wait_line(weft_process_stdout(*p), "ACCEPT");
    if (!CHECK_EQ(rc, 0)) {
        weft_process_close(*p);
        *p = NULL;
    }
    return rc;
}

static int client_config(weft_tls_config **c)
{
    int rc = weft_tls_config_client(c, ca_pem);
    CHECK_EQ(rc, 0);
    return rc;
}

/* ---- a weft client against openssl s_server ---- */

struct s_server_case {
    const char *const *server_args;
    const char *name;    /* the client's SNI and checked name */
    int expect_wrap;     /* weft_tls_wrap's result */
    const char *version; /* expected, when the handshake succeeds */
    const char *alpn;    /* expected */
};

static int client_against_s_server(void *arg)
{
    const struct s_server_case *t = arg;
    int port = weft_free_port();
    if (!CHECK_GT(port, 0))
        return port;
    weft_process *p;
    int rc = start_s_server(&p, port, t->server_args);
    if (rc < 0)
        return rc;
    weft_tls_config *cfg;
    if (client_config(&cfg) < 0) {
        weft_process_close(p);
        return -1;
    }
    const char *protocols[] = {"h2", "http/1.1"};
    CHECK_EQ(weft_tls_config_alpn(cfg, protocols, 2), 0);
    weft_stream *tcp, *s = NULL;
    rc = weft_tcp_connect(&tcp, "127.0.0.1", (uint16_t)port);
    if (CHECK_EQ(rc, 0))
        rc = weft_tls_wrap(&s, tcp, cfg, t->name);
    CHECK_EQ(rc, t->expect_wrap);
    if (rc == 0) {
        CHECK_STR_EQ(weft_tls_version(s), t->version);
        if (t->alpn)
            CHECK_STR_EQ(weft_tls_alpn(s), t->alpn);
        else
            CHECK(weft_tls_alpn(s) == NULL);
        nh_send_str(s, "hello, openssl\n");
        nh_expect(s, "lssnepo ,olleh\n");
        weft_stream_close(s);
    } else if (rc == -EKEYREJECTED) {
        char why[256];
        CHECK_GT(weft_tls_error(why, sizeof why), 0);
        CHECK(strstr(why, "verify") != NULL);
    }
    weft_tls_config_free(cfg);
    weft_process_close(p);
    return 0;
}

static void test_client_talks_to_openssl_s_server_tls13(void **state)
{
    (void)state;
    need_openssl();
    const char *args[] = {"-tls1_3", "-alpn", "http/1.1", NULL};
    struct s_server_case t = {args, "localhost", 0, "TLSv1.3", "http/1.1"};
    run_in_loop(client_against_s_server, &t);
}

static void test_client_talks_to_openssl_s_server_tls12(void **state)
{
    (void)state;
    need_openssl();
    const char *args[] = {"-tls1_2", NULL};
    struct s_server_case t = {args, "localhost", 0, "TLSv1.2", NULL};
    run_in_loop(client_against_s_server, &t);
}

static void test_client_checks_the_name_s_server_presents(void **state)
{
    (void)state;
    need_openssl();
    struct s_server_case t = {NULL, "wrong.example", -EKEYREJECTED, NULL, NULL};
    run_in_loop(client_against_s_server, &t);
}

/* ---- openssl s_client against a weft server ---- */

struct s_client_case {
    bool server_closes; /* the weft server sends close_notify first */
    int port;
    weft_listener *l;
    ssize_t after_reply; /* the server's receive after its reply */
};

/* Accept one connection, read "ping", answer "pong"; then either wait
 * for the client's close_notify or send ours. */
static int line_server(void *arg)
{
    struct s_client_case *t = arg;
    weft_stream *conn, *s;
    int rc = weft_listener_accept(t->l, &conn);
    if (!CHECK_EQ(rc, 0))
        return rc;
    weft_tls_config *cfg;
    rc = weft_tls_config_server(&cfg, cert_pem, key_pem);
    if (!CHECK_EQ(rc, 0)) {
        weft_stream_close(conn);
        return rc;
    }
    rc = weft_tls_wrap(&s, conn, cfg, NULL);
    weft_tls_config_free(cfg);
    if (!CHECK_EQ(rc, 0))
        return rc;
    char line[64];
    ssize_t n = weft_stream_recv_until(s, line, sizeof line, "\n", 1);
    if (CHECK_EQ(n, 4) && CHECK(memcmp(line, "ping", 4) == 0))
        nh_send_str(s, "pong\n");
    if (t->server_closes)
        CHECK_EQ(weft_stream_send_eof(s), 0);
    t->after_reply = weft_stream_recv(s, line, sizeof line);
    weft_stream_close(s);
    return 0;
}

static int s_client_against_server(void *arg)
{
    struct s_client_case *t = arg;
    int rc = weft_tcp_listen(&t->l, "127.0.0.1", 0);
    if (!CHECK_EQ(rc, 0))
        return rc;
    t->port = weft_listener_port(t->l);
    weft_group g;
    weft_group_enter(&g);
    rc = weft_group_spawn(&g, line_server, t);
    CHECK_EQ(rc, 0);

    char connect[32];
    snprintf(connect, sizeof connect, "127.0.0.1:%d", t->port);
    const char *argv[] = {"openssl",     "s_client",    "-connect",
                          connect,       "-CAfile",     ca_pem,
                          "-servername", "localhost",   "-verify_return_error",
                          "-quiet",      "-no_ign_eof", NULL};
    weft_process_opts o = {.err = {.how = WEFT_STDIO_DEVNULL}};
    weft_process *p;
    rc = weft_process_open(&p, argv, &o);
    if (CHECK_EQ(rc, 0)) {
        nh_send_str(weft_process_stdin(p), "ping\n");
        CHECK_EQ(wait_line(weft_process_stdout(p), "pong"), 0);
        if (t->server_closes) {
            /* s_client ends on our close_notify, its stdin still open */
            char rest[64];
            CHECK_EQ(
                weft_stream_recv(weft_process_stdout(p), rest, sizeof rest), 0);
        } else {
            /* the end of its input: s_client sends close_notify */
            CHECK_EQ(weft_stream_send_eof(weft_process_stdin(p)), 0);
        }
        int st = weft_process_wait(p);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        weft_process_close(p);
    }
    rc = weft_group_exit(&g, 0);
    weft_listener_close(t->l);
    return rc;
}

static void test_s_client_closes_and_weft_server_reads_the_end(void **state)
{
    (void)state;
    need_openssl();
    struct s_client_case t = {.server_closes = false};
    run_in_loop(s_client_against_server, &t);
    /* close_notify from s_client: a clean end, not -EPIPE */
    assert_rc((int)t.after_reply, 0);
}

static void test_weft_server_close_notify_ends_s_client(void **state)
{
    (void)state;
    need_openssl();
    struct s_client_case t = {.server_closes = true};
    run_in_loop(s_client_against_server, &t);
    /* s_client answers our close_notify with its own before it exits */
    assert_rc((int)t.after_reply, 0);
}

/* ---- curl against a weft HTTPS server ---- */

struct curl_case {
    weft_listener *l;
    int requests; /* served */
    const char *const *argv;
    int status;
    char *out;
};

static const char hello[] = "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n"
                            "Content-Type: text/plain\r\n\r\nhello\n";

static int https_server(void *arg)
{
    struct curl_case *t = arg;
    weft_tls_config *cfg;
    int rc = weft_tls_config_server(&cfg, cert_pem, key_pem);
    if (!CHECK_EQ(rc, 0))
        return rc;
    weft_stream *conn, *s;
    rc = weft_listener_accept(t->l, &conn);
    if (CHECK_EQ(rc, 0))
        rc = weft_tls_wrap(&s, conn, cfg, NULL);
    weft_tls_config_free(cfg);
    if (!CHECK_EQ(rc, 0))
        return rc;
    char head[4096];
    ssize_t n;
    while ((n = weft_stream_recv_until(s, head, sizeof head, "\r\n\r\n", 4)) >
           0) {
        t->requests++;
        if (!nh_send_str(s, hello))
            break;
    }
    weft_stream_close(s);
    return 0;
}

static int curl_against_server(void *arg)
{
    struct curl_case *t = arg;
    int rc = weft_tcp_listen(&t->l, "127.0.0.1", 0);
    if (!CHECK_EQ(rc, 0))
        return rc;
    char url[64];
    snprintf(url, sizeof url, "https://localhost:%d/",
             weft_listener_port(t->l));
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, https_server, t), 0);
    const char *argv[16];
    size_t n = 0;
    for (const char *const *a = t->argv; *a; a++)
        argv[n++] = *a;
    argv[n++] = url;
    argv[n++] = url; /* twice: the second on the same connection */
    argv[n] = NULL;
    rc = weft_process_run(argv, NULL, 0, &t->out, NULL, NULL, NULL, &t->status);
    CHECK_EQ(rc, 0);
    rc = weft_group_exit(&g, 0);
    weft_listener_close(t->l);
    return rc;
}

static void run_curl(const char *const *args)
{
    need_openssl();
    if (sh("command -v curl >/dev/null 2>&1") < 0) {
        print_message("curl is not installed\n");
        skip();
    }
    struct curl_case t = {.argv = args};
    run_in_loop(curl_against_server, &t);
    assert_true(WIFEXITED(t.status));
    assert_int_equal(WEXITSTATUS(t.status), 0);
    assert_non_null(t.out);
    assert_string_equal(t.out, "hello\nhello\n");
    assert_int_equal(t.requests, 2);
    free(t.out);
}

static void test_curl_fetches_from_weft_server_tls13(void **state)
{
    (void)state;
    const char *args[] = {"curl", "-sS", "--cacert", ca_pem, "--tlsv1.3", NULL};
    run_curl(args);
}

static void test_curl_fetches_from_weft_server_tls12(void **state)
{
    (void)state;
    const char *args[] = {"curl",      "-sS", "--cacert", ca_pem,
                          "--tls-max", "1.2", NULL};
    run_curl(args);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        NET_TEST(test_client_talks_to_openssl_s_server_tls13),
        NET_TEST(test_client_talks_to_openssl_s_server_tls12),
        NET_TEST(test_client_checks_the_name_s_server_presents),
        NET_TEST(test_s_client_closes_and_weft_server_reads_the_end),
        NET_TEST(test_weft_server_close_notify_ends_s_client),
        NET_TEST(test_curl_fetches_from_weft_server_tls13),
        NET_TEST(test_curl_fetches_from_weft_server_tls12),
    };
    return cmocka_run_group_tests(tests, make_certificates,
                                  remove_certificates);
}
