/* SPDX-License-Identifier: MIT */
/*
 * api/tls/tls_impl.h - what the TLS room shares: the configuration
 * (api/tls/config.c) and the failure text both files record. Internal.
 */
#ifndef WF_API_TLS_IMPL_H
#define WF_API_TLS_IMPL_H

#include "engine/engine.h"

#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <weft/tls.h>

/* A server's extra certificate, chosen by SNI: a context of its own only
 * holds the certificate, its chain and its key. */
struct wf_tls_cert {
    SSL_CTX *holder;
};

/* A client's last session with one server name (resumption). */
struct wf_tls_session {
    struct wf_tls_session *next;
    SSL_SESSION *sess;
    char name[];
};

struct weft_tls_config {
    SSL_CTX *ctx;
    atomic_int refs;  /* the user's, and one per stream */
    atomic_bool used; /* a wrap has begun: options say -EBUSY */
    bool server;
    bool verify;     /* client: check the server; server: require a cert */
    bool client_ca;  /* server: a client CA was given */
    bool truncation; /* allow_truncation */
    bool ktls;
    unsigned char *alpn; /* wire format: length-prefixed names */
    size_t alpn_len;
    struct wf_tls_cert *certs; /* server: the extra certificates */
    size_t ncerts;
    pthread_mutex_t lock; /* client: sessions */
    struct wf_tls_session *sessions;
};

/* A stream takes a reference to c; wf_tls_config_put drops one. */
void wf_tls_config_get(weft_tls_config *c);
void wf_tls_config_put(weft_tls_config *c);
/* A client's session to offer to server_name (a reference), or NULL. */
SSL_SESSION *wf_tls_session_find(weft_tls_config *c, const char *name);
/* The server name a stream's SSL checks (for the client's cache). */
const char *wf_tls_ssl_server_name(const SSL *ssl);

/*
 * Record the calling thread's failure text (printf-style) and clear
 * OpenSSL's error queue: nothing of one stream's failure is left for the
 * next stream on this thread to find. Returns rc.
 */
int wf_tls_fail_text(int rc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* The same from OpenSSL's error queue (and ssl's verify result, when the
 * failure is a verification): -EKEYREJECTED or -EPROTO. */
int wf_tls_fail_ssl(const SSL *ssl);
/* -ENOENT/-EACCES for a file that cannot be read, else 0. */
int wf_tls_file_check(const char *path);

/* ---- kernel TLS (api/tls/ktls.c) ---- */

/* TLS record types (RFC 8446, 5.1): what a control message carries. */
#define WF_TLS_RT_ALERT 21
#define WF_TLS_RT_HANDSHAKE 22
#define WF_TLS_RT_DATA 23

/* A control message's room: one record type. */
typedef union {
    char buf[CMSG_SPACE(sizeof(unsigned char))];
    struct cmsghdr align;
} wf_ktls_cmsg;

/* weft_tls_ktls_available(), and WEFT_TLS_KTLS not "0": a stream may try
 * the kernel. Probed once per process. */
bool wf_ktls_wanted(void);
/* Attach the "tls" ULP to fd if it is a connected TCP socket: true if it
 * took it (the socket is plain TCP until a direction gets keys). */
bool wf_ktls_attach(int fd);
/* Install one direction's keys (a struct tls12_crypto_info_* that OpenSSL
 * filled): 0 or -errno; -EOPNOTSUPP for a cipher weft does not know. */
int wf_ktls_install(int fd, const void *crypto_info, bool tx);
/* Make mh carry a record type (sendmsg), or room to learn it (recvmsg);
 * wf_ktls_type reads it after a recvmsg (WF_TLS_RT_DATA if absent). */
void wf_ktls_set_type(struct msghdr *mh, wf_ktls_cmsg *cbuf,
                      unsigned char type);
void wf_ktls_want_type(struct msghdr *mh, wf_ktls_cmsg *cbuf);
int wf_ktls_type(const struct msghdr *mh);

#endif
