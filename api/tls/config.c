/* SPDX-License-Identifier: MIT */
/*
 * api/tls/config.c - TLS configurations: an OpenSSL SSL_CTX and weft's
 * options around it, shared by every stream made with it on any thread
 * (a reference count; the client's session cache under a mutex), and
 * the calling thread's last failure text (weft_tls_error).
 *
 * Options change the SSL_CTX at once; they are refused (-EBUSY) once a
 * wrap has used the configuration, since OpenSSL does not let an SSL_CTX
 * change while SSL objects are made from it on other threads.
 */
#include "api/tls/tls_impl.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- the calling thread's last failure ---- */

static _Thread_local char last_error[256];

int wf_tls_fail_text(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    ERR_clear_error();
    return rc;
}

int wf_tls_fail_ssl(const SSL *ssl)
{
    unsigned long e = ERR_peek_last_error();
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
        ERR_GET_REASON(e) == SSL_R_CERTIFICATE_VERIFY_FAILED) {
        const char *why = vr != X509_V_OK ? X509_verify_cert_error_string(vr)
                                          : "no reason given";
        return wf_tls_fail_text(-EKEYREJECTED, "certificate verify failed: %s",
                                why);
    }
    if (!e)
        return wf_tls_fail_text(-EPROTO, "TLS failure with no reason "
                                         "given by OpenSSL");
    const char *reason = ERR_reason_error_string(e);
    if (reason)
        return wf_tls_fail_text(-EPROTO, "%s", reason);
    char buf[200];
    ERR_error_string_n(e, buf, sizeof buf);
    return wf_tls_fail_text(-EPROTO, "%s", buf);
}

WF_EXPORT size_t weft_tls_error(char *buf, size_t len)
{
    size_t n = strlen(last_error);
    if (buf && len) {
        size_t k = n < len - 1 ? n : len - 1;
        memcpy(buf, last_error, k);
        buf[k] = '\0';
    }
    return n;
}

int wf_tls_file_check(const char *path)
{
    return access(path, R_OK) < 0 ? -errno : 0;
}

/* ---- references ---- */

void wf_tls_config_get(weft_tls_config *c)
{
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

static void sessions_free(struct wf_tls_session *s)
{
    while (s) {
        struct wf_tls_session *next = s->next;
        SSL_SESSION_free(s->sess);
        free(s);
        s = next;
    }
}

void wf_tls_config_put(weft_tls_config *c)
{
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
        return;
    SSL_CTX_free(c->ctx);
    for (size_t i = 0; i < c->ncerts; i++)
        SSL_CTX_free(c->certs[i].holder);
    free(c->certs);
    free(c->alpn);
    sessions_free(c->sessions);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

WF_EXPORT void weft_tls_config_free(weft_tls_config *c)
{
    if (c)
        wf_tls_config_put(c);
}

/* ---- the client's session cache: the last session per server name ---- */

static int new_session(SSL *ssl, SSL_SESSION *sess)
{
    weft_tls_config *c = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const char *name = wf_tls_ssl_server_name(ssl);
    if (!name || !SSL_SESSION_is_resumable(sess))
        return 0; /* not kept: OpenSSL frees it */
    pthread_mutex_lock(&c->lock);
    struct wf_tls_session *s = c->sessions;
    while (s && strcmp(s->name, name) != 0)
        s = s->next;
    if (s) {
        SSL_SESSION_free(s->sess);
        s->sess = sess;
    } else if ((s = malloc(sizeof *s + strlen(name) + 1))) {
        strcpy(s->name, name);
        s->sess = sess;
        s->next = c->sessions;
        c->sessions = s;
    }
    pthread_mutex_unlock(&c->lock);
    return s ? 1 : 0; /* 1: the cache keeps OpenSSL's reference */
}

SSL_SESSION *wf_tls_session_find(weft_tls_config *c, const char *name)
{
    SSL_SESSION *found = NULL;
    pthread_mutex_lock(&c->lock);
    for (struct wf_tls_session *s = c->sessions; s; s = s->next) {
        if (strcmp(s->name, name) == 0) {
            /* TLS 1.3 tickets are for one use: hand it over. */
            found = s->sess;
            SSL_SESSION_up_ref(found);
            break;
        }
    }
    pthread_mutex_unlock(&c->lock);
    return found;
}

/* ---- the server's callbacks: ALPN, certificates by SNI ---- */

static int alpn_select(SSL *ssl, const unsigned char **out,
                       unsigned char *outlen, const unsigned char *in,
                       unsigned int inlen, void *arg)
{
    const weft_tls_config *c = arg;
    /* The server's order of preference: the first of its own the client
     * offers. */
    for (size_t i = 0; i < c->alpn_len; i += 1 + c->alpn[i]) {
        const unsigned char *mine = c->alpn + i;
        for (unsigned j = 0; j < inlen; j += 1u + in[j]) {
            if (in[j] == mine[0] && j + 1u + in[j] <= inlen &&
                memcmp(in + j + 1, mine + 1, mine[0]) == 0) {
                *out = in + j + 1;
                *outlen = in[j];
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
}

static int servername(SSL *ssl, int *alert, void *arg)
{
    const weft_tls_config *c = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    if (!name)
        return SSL_TLSEXT_ERR_OK; /* the default certificate */
    for (size_t i = 0; i < c->ncerts; i++) {
        SSL_CTX *h = c->certs[i].holder;
        X509 *x = SSL_CTX_get0_certificate(h);
        if (X509_check_host(x, name, 0, 0, NULL) != 1)
            continue;
        STACK_OF(X509) *chain = NULL;
        SSL_CTX_get0_chain_certs(h, &chain);
        if (SSL_use_cert_and_key(ssl, x, SSL_CTX_get0_privatekey(h), chain,
                                 1) != 1) {
            *alert = SSL_AD_INTERNAL_ERROR;
            return SSL_TLSEXT_ERR_ALERT_FATAL;
        }
        break;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* ---- making a configuration ---- */

/* A new configuration, or NULL with *rc saying why. */
static weft_tls_config *config_new(bool server, int *rc)
{
    weft_tls_config *c = calloc(1, sizeof *c);
    if (!c) {
        *rc = -ENOMEM;
        return NULL;
    }
    c->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!c->ctx) {
        free(c);
        *rc = wf_tls_fail_ssl(NULL);
        return NULL;
    }
    atomic_init(&c->refs, 1);
    atomic_init(&c->used, false);
    pthread_mutex_init(&c->lock, NULL);
    c->server = server;
    c->verify = !server;
    c->ktls = true;
    SSL_CTX_set_app_data(c->ctx, c);
    SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
    /* Renegotiation is an attack surface weft does not need; partial
     * writes stay off (SSL_write takes all it is given). */
    SSL_CTX_set_options(c->ctx, SSL_OP_NO_RENEGOTIATION);
    SSL_CTX_clear_mode(c->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (server) {
        static const unsigned char sid[] = "weft";
        SSL_CTX_set_session_id_context(c->ctx, sid, sizeof sid - 1);
        SSL_CTX_set_tlsext_servername_callback(c->ctx, servername);
        SSL_CTX_set_tlsext_servername_arg(c->ctx, c);
    } else {
        SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
        SSL_CTX_set_session_cache_mode(
            c->ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(c->ctx, new_session);
    }
    return c;
}

/*
 * OpenSSL computes a certificate's extension cache (its key identifiers,
 * its purposes) the first time it looks, under the certificate's lock for
 * the write but not for other readers: two threads making their first
 * handshakes with one configuration race there (ThreadSanitizer sees it
 * in OpenSSL 3.0). A configuration is shared only once made, so every
 * certificate it holds has its cache computed here, before that.
 */
static void warm(X509 *x)
{
    if (x)
        (void)X509_check_purpose(x, -1, 0);
}

static void warm_ctx(SSL_CTX *ctx)
{
    STACK_OF(X509_OBJECT) *objs =
        X509_STORE_get0_objects(SSL_CTX_get_cert_store(ctx));
    for (int i = 0; i < sk_X509_OBJECT_num(objs); i++)
        warm(X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs, i)));
    warm(SSL_CTX_get0_certificate(ctx));
    STACK_OF(X509) *chain = NULL;
    if (SSL_CTX_get0_chain_certs(ctx, &chain) == 1)
        for (int i = 0; i < sk_X509_num(chain); i++)
            warm(sk_X509_value(chain, i));
}

WF_EXPORT int weft_tls_config_client(weft_tls_config **out, const char *ca_file)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    int rc = ca_file ? wf_tls_file_check(ca_file) : 0;
    if (rc < 0)
        return rc;
    weft_tls_config *c = config_new(false, &rc);
    if (!c)
        return rc;
    int ok = ca_file ? SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(c->ctx);
    if (ok != 1) {
        rc = wf_tls_fail_ssl(NULL);
        wf_tls_config_put(c);
        return rc;
    }
    warm_ctx(c->ctx);
    *out = c;
    return 0;
}

/* A certificate chain and its key (PEM) into ctx. */
static int load_cert(SSL_CTX *ctx, const char *cert_file, const char *key_file)
{
    int rc = wf_tls_file_check(cert_file);
    if (rc == 0)
        rc = wf_tls_file_check(key_file);
    if (rc < 0)
        return rc;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1)
        return wf_tls_fail_ssl(NULL);
    warm_ctx(ctx);
    return 0;
}

WF_EXPORT int weft_tls_config_server(weft_tls_config **out,
                                     const char *cert_file,
                                     const char *key_file)
{
    if (!out)
        return -EINVAL;
    *out = NULL;
    if (!cert_file || !key_file)
        return -EINVAL;
    int rc;
    weft_tls_config *c = config_new(true, &rc);
    if (!c)
        return rc;
    if ((rc = load_cert(c->ctx, cert_file, key_file)) < 0) {
        wf_tls_config_put(c);
        return rc;
    }
    *out = c;
    return 0;
}

/* ---- options ---- */

/* The common verdict of an option: -EINVAL (no config), -EBUSY (used). */
static int option_check(const weft_tls_config *c)
{
    if (!c)
        return -EINVAL;
    return atomic_load(&c->used) ? -EBUSY : 0;
}

WF_EXPORT int weft_tls_config_alpn(weft_tls_config *c,
                                   const char *const *protocols, size_t n)
{
    int rc = option_check(c);
    if (rc < 0)
        return rc;
    if (!n || !protocols)
        return -EINVAL;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = protocols[i] ? strlen(protocols[i]) : 0;
        if (k == 0 || k > 255)
            return -EINVAL;
        len += 1 + k;
    }
    if (len > 65535)
        return -EINVAL;
    unsigned char *wire = malloc(len), *p = wire;
    if (!wire)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(protocols[i]);
        *p++ = (unsigned char)k;
        memcpy(p, protocols[i], k);
        p += k;
    }
    /* SSL_CTX_set_alpn_protos returns 0 on success. */
    if (!c->server &&
        SSL_CTX_set_alpn_protos(c->ctx, wire, (unsigned)len) != 0) {
        free(wire);
        return wf_tls_fail_ssl(NULL);
    }
    free(c->alpn);
    c->alpn = wire;
    c->alpn_len = len;
    if (c->server)
        SSL_CTX_set_alpn_select_cb(c->ctx, alpn_select, c);
    return 0;
}

/* The server's verify mode from its two options. */
static void server_verify_mode(weft_tls_config *c)
{
    SSL_CTX_set_verify(c->ctx,
                       c->verify
                           ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT
                           : SSL_VERIFY_NONE,
                       NULL);
}

WF_EXPORT int weft_tls_config_verify(weft_tls_config *c, bool on)
{
    int rc = option_check(c);
    if (rc < 0)
        return rc;
    c->verify = on;
    if (c->server)
        server_verify_mode(c);
    else
        SSL_CTX_set_verify(c->ctx, on ? SSL_VERIFY_PEER : SSL_VERIFY_NONE,
                           NULL);
    return 0;
}

WF_EXPORT int weft_tls_config_client_ca(weft_tls_config *c, const char *ca_file)
{
    int rc = option_check(c);
    if (rc < 0)
        return rc;
    if (!c->server || !ca_file)
        return -EINVAL;
    if ((rc = wf_tls_file_check(ca_file)) < 0)
        return rc;
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(ca_file);
    if (!names || SSL_CTX_load_verify_locations(c->ctx, ca_file, NULL) != 1) {
        sk_X509_NAME_pop_free(names, X509_NAME_free);
        return wf_tls_fail_ssl(NULL);
    }
    SSL_CTX_set_client_CA_list(c->ctx, names);
    warm_ctx(c->ctx);
    c->client_ca = true;
    c->verify = true;
    server_verify_mode(c);
    return 0;
}

WF_EXPORT int weft_tls_config_certificate(weft_tls_config *c,
                                          const char *cert_file,
                                          const char *key_file)
{
    int rc = option_check(c);
    if (rc < 0)
        return rc;
    if (!cert_file || !key_file)
        return -EINVAL;
    if (!c->server)
        return load_cert(c->ctx, cert_file, key_file);
    SSL_CTX *h = SSL_CTX_new(TLS_server_method());
    if (!h)
        return wf_tls_fail_ssl(NULL);
    struct wf_tls_cert *certs =
        (rc = load_cert(h, cert_file, key_file)) < 0
            ? NULL
            : realloc(c->certs, (c->ncerts + 1) * sizeof *certs);
    if (!certs) {
        SSL_CTX_free(h);
        return rc < 0 ? rc : -ENOMEM;
    }
    c->certs = certs;
    c->certs[c->ncerts++].holder = h;
    return 0;
}

WF_EXPORT int weft_tls_config_min_version(weft_tls_config *c, int version)
{
    int rc = option_check(c);
    if (rc < 0)
        return rc;
    if (version != WEFT_TLS_1_2 && version != WEFT_TLS_1_3)
        return -EINVAL;
    /* WEFT_TLS_1_2/_1_3 are the wire versions, as OpenSSL's are. */
    SSL_CTX_set_min_proto_version(c->ctx, version);
    return 0;
}

WF_EXPORT int weft_tls_config_resumption(weft_tls_config *c, bool on)
{
    int rc = option_check(c);
    if (rc < 0)
        return rc;
    if (c->server) {
        SSL_CTX_set_session_cache_mode(c->ctx, on ? SSL_SESS_CACHE_SERVER
                                                  : SSL_SESS_CACHE_OFF);
        SSL_CTX_set_num_tickets(c->ctx, on ? 2 : 0);
        if (on)
            SSL_CTX_clear_options(c->ctx, SSL_OP_NO_TICKET);
        else
            SSL_CTX_set_options(c->ctx, SSL_OP_NO_TICKET);
    } else {
        SSL_CTX_set_session_cache_mode(c->ctx,
                                       on ? SSL_SESS_CACHE_CLIENT |
                                                SSL_SESS_CACHE_NO_INTERNAL_STORE
                                          : SSL_SESS_CACHE_OFF);
    }
    return 0;
}

WF_EXPORT int weft_tls_config_allow_truncation(weft_tls_config *c, bool on)
{
    int rc = option_check(c);
    if (rc < 0)
        return rc;
    c->truncation = on;
    return 0;
}

WF_EXPORT int weft_tls_config_ktls(weft_tls_config *c, bool on)
{
    int rc = option_check(c);
    if (rc < 0)
        return rc;
    c->ktls = on;
    return 0;
}

WF_EXPORT void *weft_tls_config_ssl_ctx(weft_tls_config *c)
{
    return c ? c->ctx : NULL;
}
