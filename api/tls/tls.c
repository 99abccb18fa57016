/* SPDX-License-Identifier: MIT */
/*
 * api/tls/tls.c - TLS streams: a weft_transport (weft/transport.h) whose
 * every byte goes through the inner stream, so through the ring.
 *
 * OpenSSL reads and writes memory only, through a BIO of ours: reads
 * take from the stream's input buffer, which the receiving task fills
 * with weft_stream_recv(inner); writes append to the output queue, which
 * one task at a time (the flusher) drains into the inner stream. Records
 * come out of SSL_read too (a TLS 1.3 KeyUpdate answered, an alert), so
 * the receiver may flush as well as the sender: whichever finds the
 * queue not being flushed becomes the flusher and sends until it is
 * empty; the other leaves it to that one, or, when it must know its own
 * records sent (a send, send_eof), waits until the flusher is done.
 *
 * The SSL object is used by two tasks (one receiving, one sending), but
 * tasks of one loop switch only inside weft calls, and no OpenSSL call
 * makes one: every SSL_* call runs to its end without the other task in
 * between.
 *
 * Nothing is lost to a cancellation: the input buffer and OpenSSL keep
 * what a cancelled receive took from the transport; a cancelled flush
 * leaves the unsent rest queued (it learns exactly how much went, one
 * transfer at a time) and the next flush, or close, sends it. The output
 * queue is a list of blocks that never move while a transfer from them
 * is in flight: the kernel reads them.
 */
#include "api/stream/stream_impl.h"
#include "api/tls/tls_impl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/transport.h>

/* The input buffer: two full records (16 KiB of plaintext, 256 bytes of
 * overhead each) per receive from the transport. */
#define WF_TLS_IN 34304
/* An output block's size, and how much plaintext one SSL_write takes:
 * a send of 16 MiB is encrypted and flushed 64 KiB at a time. */
#define WF_TLS_OUT_BLOCK 70000
#define WF_TLS_CHUNK 65536
/* sendv gathers pieces into whole records of this many bytes. */
#define WF_TLS_RECORD 16384

struct out_block {
    struct out_block *next;
    size_t head, tail, cap; /* bytes [head, tail) still to send */
    char data[];
};

struct tls_stream {
    weft_stream *inner;
    weft_tls_config *cfg;
    SSL *ssl;
    char *server_name;
    /* input: bytes [in_pos, in_pos + in_len) of in, not yet given to
     * OpenSSL */
    char *in;
    size_t in_pos, in_len;
    bool filling;     /* a receive into in is under way */
    bool reading;     /* in SSL_read: what it queues is the receiver's */
    bool recv_queued; /* SSL_read queued records (a KeyUpdate's answer) */
    bool in_eof;      /* the inner stream ended */
    /* output: the queue of blocks, and the total still to send */
    struct out_block *out_head, *out_tail;
    size_t out_len;
    bool flushing;
    int out_err; /* the inner stream failed a transfer: the output is gone */
    wf_link flush_waiters;
    size_t nflush_waiters;
    char *gather; /* sendv's record being gathered */
    int broken;   /* -EPROTO, -EKEYREJECTED or -ENOMEM: the stream is broken */
    bool send_broken;   /* a send failed after encrypting: -EPIPE */
    bool shutdown_sent; /* close_notify is queued */
    bool handshaken;
    bool oom; /* the BIO could not queue a record: the failure is -ENOMEM */
    char alpn[256]; /* the protocol agreed, terminated; "" for none */
    int ktls;       /* WEFT_TLS_KTLS_SEND | _RECV: the kernel has the records */
};

static const weft_transport tls_ops;

static struct tls_stream *tls_of(const weft_stream *s)
{
    return s && wf_stream_transport(s) == &tls_ops ? weft_stream_impl(s) : NULL;
}

/* ---- the BIO: OpenSSL's view of the two buffers ---- */

static int bio_write(BIO *b, const char *data, int len)
{
    struct tls_stream *t = BIO_get_data(b);
    size_t n = (size_t)len;
    t->recv_queued |= t->reading;
    while (n) {
        struct out_block *k = t->out_tail;
        if (!k || k->tail == k->cap) {
            size_t cap = n > WF_TLS_OUT_BLOCK ? n : WF_TLS_OUT_BLOCK;
            if (!(k = wf_malloc(sizeof *k + cap))) {
                t->oom = true; /* OpenSSL fails the call: -ENOMEM */
                return -1;
            }
            k->next = NULL;
            k->head = k->tail = 0;
            k->cap = cap;
            if (t->out_tail)
                t->out_tail->next = k;
            else
                t->out_head = k;
            t->out_tail = k;
        }
        /* Appending after a transfer in flight from this block is safe:
         * the block does not move. */
        size_t room = k->cap - k->tail;
        size_t take = n < room ? n : room;
        memcpy(k->data + k->tail, data, take);
        k->tail += take;
        t->out_len += take;
        data += take;
        n -= take;
    }
    return len;
}

static int bio_read(BIO *b, char *buf, int len)
{
    struct tls_stream *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    /* Nothing to give (or the kernel is writing into in): OpenSSL says
     * SSL_ERROR_WANT_READ and the receiver fills the buffer. The end of
     * the inner stream is never passed on: the receiver reports it. */
    if (!t->in_len || t->filling) {
        BIO_set_retry_read(b);
        return -1;
    }
    size_t n = t->in_len < (size_t)len ? t->in_len : (size_t)len;
    memcpy(buf, t->in + t->in_pos, n);
    t->in_pos += n;
    t->in_len -= n;
    return (int)n;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct tls_stream *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1; /* the flusher sends; OpenSSL need not wait */
    case BIO_CTRL_PENDING:
        return (long)t->in_len;
    case BIO_CTRL_WPENDING:
        return (long)t->out_len;
    default:
        return 0;
    }
}

static BIO_METHOD *bio_method;
static pthread_once_t bio_once = PTHREAD_ONCE_INIT;

static void bio_method_make(void)
{
    BIO_METHOD *m =
        BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "weft stream");
    if (m && (BIO_meth_set_write(m, bio_write) != 1 ||
              BIO_meth_set_read(m, bio_read) != 1 ||
              BIO_meth_set_ctrl(m, bio_ctrl) != 1)) {
        BIO_meth_free(m);
        m = NULL;
    }
    bio_method = m;
}

/* ---- output: one flusher at a time ---- */

/* One transfer into the inner stream: how many bytes it took. Not
 * weft_stream_send, which sends all or says -ECANCELED without saying
 * how much went before: the flusher must know, so that a cancelled
 * flush leaves exactly the unsent rest queued. */
static ssize_t send_some(weft_stream *s, const void *buf, size_t len)
{
    int rc = wf_stream_claim(s, 0, false);
    if (rc < 0)
        return rc;
    ssize_t n = wf_stream_closing(s) ? -EBADF : s->ops->send(s, buf, len);
    wf_stream_unclaim(s, false);
    return n == 0 ? -EIO : n;
}

/* The sent head block freed (the last one is kept, emptied). */
static void out_sent(struct tls_stream *t, size_t n)
{
    struct out_block *k = t->out_head;
    k->head += n;
    t->out_len -= n;
    if (k->head < k->tail)
        return;
    if (k->next) {
        t->out_head = k->next;
        wf_free(k);
    } else {
        k->head = k->tail = 0;
    }
}

/* Send the queue until it is empty: only the task that set flushing. */
static int flush_all(struct tls_stream *t)
{
    t->flushing = true;
    int rc = 0;
    while (t->out_len) {
        struct out_block *k = t->out_head;
        ssize_t n = send_some(t->inner, k->data + k->head, k->tail - k->head);
        if (n < 0) {
            rc = (int)n;
            break;
        }
        out_sent(t, (size_t)n);
    }
    /* A failed transfer (not a cancelled one) may have sent part of a
     * record: nothing after it can be sent. */
    if (rc < 0 && rc != -ECANCELED && !t->out_err)
        t->out_err = rc;
    t->flushing = false;
    struct wf_waiter *wr;
    while ((wr = wf_waiter_first(&t->flush_waiters)))
        wf_waiter_grant(wr, 0);
    return rc;
}

/* Send what is queued if no other task is already doing it. */
static int flush_some(struct tls_stream *t)
{
    if (t->out_err)
        return t->out_err;
    return t->flushing || !t->out_len ? 0 : flush_all(t);
}

/* Return once everything queued so far has been sent (by this task, or
 * by the flusher under way). */
static int flush_wait(struct tls_stream *t)
{
    for (;;) {
        if (t->out_err)
            return t->out_err;
        if (!t->out_len)
            return 0;
        if (!t->flushing)
            return flush_all(t);
        struct wf_waiter wr = {0};
        int rc = wf_waiter_block(&wr, &t->flush_waiters, &t->nflush_waiters,
                                 "weft_stream_send (TLS flush)", true);
        if (rc < 0)
            return rc;
    }
}

/* ---- input ---- */

/* Refill the empty input buffer from the inner stream: >0, 0 at its end,
 * or -errno (a cancelled receive took nothing). */
static ssize_t fill(struct tls_stream *t)
{
    if (t->in_eof)
        return 0;
    t->in_pos = 0;
    t->filling = true;
    ssize_t n = weft_stream_recv(t->inner, t->in, WF_TLS_IN);
    t->filling = false;
    if (n > 0)
        t->in_len = (size_t)n;
    else if (n == 0)
        t->in_eof = true;
    return n;
}

/* A fatal TLS failure: the stream is broken from now on; the alert
 * OpenSSL queued goes to the peer if that takes no wait for another
 * flusher. */
static int failure(struct tls_stream *t)
{
    if (t->oom)
        return wf_tls_fail_text(-ENOMEM, "no memory to queue a TLS record");
    return wf_tls_fail_ssl(t->ssl);
}

static int broken(struct tls_stream *t)
{
    t->broken = failure(t);
    (void)flush_some(t);
    return t->broken;
}

/* The end of the transport: after close_notify 0, else truncation. */
static int ended(struct tls_stream *t)
{
    return t->cfg->truncation ? 0 : -EPIPE;
}

/* ---- the transport ---- */

/* The receiver sends what SSL_read queued, and only then: the rest of a
 * cancelled send waits for the next send or close, so that a receiver
 * never blocks on output the peer is not reading. (Records SSL_read
 * queues after such a rest go out behind it, in order, by the flush.) */
static int recv_flush(struct tls_stream *t)
{
    if (!t->recv_queued)
        return 0;
    int rc = flush_some(t);
    if (rc == 0)
        t->recv_queued = false;
    return rc;
}

static ssize_t tls_recv(void *impl, void *buf, size_t max)
{
    struct tls_stream *t = impl;
    if (t->broken)
        return t->broken;
    if (t->ktls & WEFT_TLS_KTLS_RECV)
        return weft_stream_recv(t->inner, buf, max);
    for (;;) {
        size_t n = 0;
        ERR_clear_error();
        t->reading = true;
        int r = SSL_read_ex(t->ssl, buf, max, &n);
        t->reading = false;
        if (r == 1) {
            /* The bytes are the result; an answer SSL_read queued (a
             * KeyUpdate's) goes now or with the next flush. */
            (void)recv_flush(t);
            return (ssize_t)n;
        }
        int e = SSL_get_error(t->ssl, r);
        if (e == SSL_ERROR_ZERO_RETURN)
            return 0; /* close_notify */
        if (e != SSL_ERROR_WANT_READ)
            return broken(t);
        int rc = recv_flush(t);
        if (rc == -ECANCELED)
            return rc;
        ssize_t got = fill(t);
        if (got == 0)
            return ended(t);
        if (got < 0)
            return got;
    }
}

/* Encrypt len bytes into the queue (SSL_write takes all: no partial
 * writes). */
static int encrypt(struct tls_stream *t, const void *buf, size_t len)
{
    size_t n;
    ERR_clear_error();
    if (SSL_write_ex(t->ssl, buf, len, &n) != 1)
        return broken(t);
    return 0;
}

/* The common refusals of the send side. */
static int send_check(const struct tls_stream *t)
{
    if (t->broken)
        return t->broken;
    if (t->send_broken || t->shutdown_sent)
        return -EPIPE;
    return t->out_err ? -EPIPE : 0;
}

/* A send that encrypted something and then failed breaks the send side:
 * some of its records may be on the wire. */
static int send_failed(struct tls_stream *t, int rc)
{
    t->send_broken = true;
    return rc;
}

/* The whole of buf, 64 KiB of plaintext at a time, each flushed before
 * the next is encrypted: one call, so that "something was encrypted"
 * means "this send". */
static ssize_t tls_send(void *impl, const void *buf, size_t len)
{
    struct tls_stream *t = impl;
    int rc = send_check(t);
    if (rc < 0)
        return rc;
    if (t->ktls & WEFT_TLS_KTLS_SEND)
        return weft_stream_send(t->inner, buf, len);
    /* Output queued by the receiver goes first, before anything of ours
     * is encrypted: a cancel here leaves the send side usable. */
    if ((rc = flush_wait(t)) < 0)
        return rc == -ECANCELED ? rc : send_failed(t, rc);
    for (size_t done = 0; done < len;) {
        size_t n = len - done < WF_TLS_CHUNK ? len - done : WF_TLS_CHUNK;
        if ((rc = encrypt(t, (const char *)buf + done, n)) < 0)
            return rc;
        done += n;
        if ((rc = flush_wait(t)) < 0)
            return send_failed(t, rc);
    }
    return (ssize_t)len;
}

/* sendv: small pieces gathered into whole records (a header and a body
 * make one record, not two), large ones encrypted where they are. */
static ssize_t tls_sendv(void *impl, const struct iovec *iov, int iovcnt)
{
    struct tls_stream *t = impl;
    int rc = send_check(t);
    if (rc < 0)
        return rc;
    if (t->ktls & WEFT_TLS_KTLS_SEND)
        return weft_stream_sendv(t->inner, iov, iovcnt);
    if (!t->gather && !(t->gather = wf_malloc(WF_TLS_RECORD)))
        return -ENOMEM;
    if ((rc = flush_wait(t)) < 0)
        return rc == -ECANCELED ? rc : send_failed(t, rc);
    size_t total = 0, held = 0;
    for (int i = 0; i < iovcnt; i++) {
        const char *p = iov[i].iov_base;
        size_t left = iov[i].iov_len;
        total += left;
        while (left) {
            size_t n;
            if (!held && left >= WF_TLS_RECORD) {
                n = left < WF_TLS_CHUNK ? left : WF_TLS_CHUNK;
                rc = encrypt(t, p, n);
            } else {
                n = WF_TLS_RECORD - held < left ? WF_TLS_RECORD - held : left;
                memcpy(t->gather + held, p, n);
                held += n;
                rc = 0;
                if (held == WF_TLS_RECORD) {
                    rc = encrypt(t, t->gather, held);
                    held = 0;
                }
            }
            if (rc < 0)
                return rc;
            p += n;
            left -= n;
            if (t->out_len >= WF_TLS_CHUNK && (rc = flush_wait(t)) < 0)
                return send_failed(t, rc);
        }
    }
    if (held && (rc = encrypt(t, t->gather, held)) < 0)
        return rc;
    if ((rc = flush_wait(t)) < 0)
        return send_failed(t, rc);
    return (ssize_t)total;
}

/* close_notify, flushed; the stream can still receive. */
static int tls_send_eof(void *impl)
{
    struct tls_stream *t = impl;
    if (t->broken)
        return t->broken;
    if (t->send_broken || t->out_err)
        return -EPIPE;
    if (!t->shutdown_sent) {
        ERR_clear_error();
        if (SSL_shutdown(t->ssl) < 0)
            return broken(t);
        t->shutdown_sent = true;
    }
    /* Cancelled here, close_notify stays queued: a later send_eof (or
     * close) sends it. */
    return flush_wait(t);
}

/* Send what is queued if the inner stream is a socket that takes it at
 * once: close does not wait for the peer. */
static void flush_nowait(struct tls_stream *t)
{
    int fd = weft_stream_fd(t->inner);
    while (fd >= 0 && t->out_len && !t->out_err) {
        struct out_block *k = t->out_head;
        ssize_t n = send(fd, k->data + k->head, k->tail - k->head,
                         MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n <= 0)
            break; /* full, not a socket, or gone: the rest is dropped */
        out_sent(t, (size_t)n);
    }
}

static void tls_free(struct tls_stream *t)
{
    SSL_free(t->ssl); /* and the BIO */
    while (t->out_head) {
        struct out_block *k = t->out_head;
        t->out_head = k->next;
        wf_free(k);
    }
    wf_free(t->in);
    wf_free(t->gather);
    wf_free(t->server_name);
    wf_tls_config_put(t->cfg);
    wf_free(t);
}

static int tls_close(void *impl)
{
    struct tls_stream *t = impl;
    /* No flusher can be under way: close comes after every call left. */
    if (t->handshaken && !t->broken && !t->send_broken && !t->shutdown_sent &&
        !t->ktls) {
        ERR_clear_error();
        if (SSL_shutdown(t->ssl) >= 0)
            t->shutdown_sent = true;
        ERR_clear_error();
    }
    flush_nowait(t);
    int rc = weft_stream_close(t->inner);
    tls_free(t);
    return rc;
}

static int tls_fd(const void *impl)
{
    const struct tls_stream *t = impl;
    return weft_stream_fd(t->inner);
}

static const weft_transport tls_ops = {
    .recv = tls_recv,
    .send = tls_send,
    .sendv = tls_sendv,
    .send_eof = tls_send_eof,
    .close = tls_close,
    .fd = tls_fd,
};

/* ---- kernel TLS ---- */

static bool ktls_available;
static pthread_once_t ktls_once = PTHREAD_ONCE_INIT;

/* Whether the kernel attaches the "tls" ULP to a connected TCP socket
 * (it refuses a listening one): a loopback pair made for the question. */
static void ktls_probe(void)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int a = -1;
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (l >= 0 && c >= 0 && bind(l, (struct sockaddr *)&sa, sl) == 0 &&
        listen(l, 1) == 0 && getsockname(l, (struct sockaddr *)&sa, &sl) == 0 &&
        connect(c, (struct sockaddr *)&sa, sl) == 0 &&
        (a = accept4(l, NULL, NULL, SOCK_CLOEXEC)) >= 0)
        ktls_available = setsockopt(c, SOL_TCP, TCP_ULP, "tls", 3) == 0;
    for (int *fd = (int[]){l, c, a}, i = 0; i < 3; i++)
        if (fd[i] >= 0)
            close(fd[i]);
}

WF_EXPORT bool weft_tls_ktls_available(void)
{
    pthread_once(&ktls_once, ktls_probe);
    return ktls_available;
}

/*
 * After the handshake: hand the record layer to the kernel where it can
 * take it, and say which directions it took (t->ktls). Not done yet: it
 * returns 0 (the records stay in OpenSSL) when the kernel has no TLS
 * ULP, the configuration turned it off, or always for now.
 *
 * The hand-off, when it comes: OpenSSL 3 does it itself with
 * SSL_OP_ENABLE_KTLS on a socket BIO, which weft does not use; here it
 * takes the keys and sequence numbers of the session (after the
 * handshake, with nothing left in the input buffer or OpenSSL's read
 * buffer, and the output queue flushed), setsockopt(TCP_ULP, "tls") and
 * TLS_TX/TLS_RX with a tls12_crypto_info_* on weft_stream_fd(inner),
 * then sets WEFT_TLS_KTLS_SEND/_RECV: tls_recv, tls_send, tls_sendv then
 * are plain operations of the inner stream (already written above).
 * Records other than data (a TLS 1.3 KeyUpdate, a ticket) then arrive
 * as control messages of a recvmsg, which the inner stream's recv does
 * not read: the receive side must move to a recvmsg of its own first.
 */
static int ktls_try(struct tls_stream *t)
{
    if (!t->cfg->ktls || !weft_tls_ktls_available() ||
        weft_stream_fd(t->inner) < 0)
        return 0;
    return 0; /* the hand-off is not written yet */
}

/* ---- the handshake ---- */

/* The SSL of a new stream over t, client or server. */
static int ssl_setup(struct tls_stream *t, const char *server_name)
{
    pthread_once(&bio_once, bio_method_make);
    weft_tls_config *c = t->cfg;
    BIO *bio = bio_method ? BIO_new(bio_method) : NULL;
    t->ssl = bio ? SSL_new(c->ctx) : NULL;
    if (!t->ssl) {
        BIO_free(bio);
        return wf_tls_fail_ssl(NULL);
    }
    BIO_set_data(bio, t);
    BIO_set_init(bio, 1);
    SSL_set_bio(t->ssl, bio, bio); /* one reference, for both */
    SSL_set_app_data(t->ssl, t);
    if (c->server) {
        SSL_set_accept_state(t->ssl);
        return 0;
    }
    SSL_set_connect_state(t->ssl);
    if (!server_name)
        return 0;
    if (!(t->server_name = wf_malloc(strlen(server_name) + 1)))
        return -ENOMEM;
    strcpy(t->server_name, server_name);
    unsigned char ip[16];
    bool is_ip = inet_pton(AF_INET, server_name, ip) == 1 ||
                 inet_pton(AF_INET6, server_name, ip) == 1;
    int ok = 1;
    if (is_ip) {
        /* No SNI for an address (RFC 6066); the address is checked
         * against the certificate's IP entries. */
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), server_name);
    } else {
        ok = SSL_set_tlsext_host_name(t->ssl, server_name) == 1 &&
             SSL_set1_host(t->ssl, server_name) == 1;
    }
    if (ok != 1)
        return wf_tls_fail_ssl(NULL);
    SSL_SESSION *sess = wf_tls_session_find(c, server_name);
    if (sess) {
        SSL_set_session(t->ssl, sess);
        SSL_SESSION_free(sess);
    }
    return 0;
}

const char *wf_tls_ssl_server_name(const SSL *ssl)
{
    const struct tls_stream *t = SSL_get_app_data(ssl);
    return t ? t->server_name : NULL;
}

/* SSL_do_handshake until done, flushing and receiving in between: a
 * checkpoint at every step. */
static int handshake(struct tls_stream *t)
{
    for (;;) {
        ERR_clear_error();
        int r = SSL_do_handshake(t->ssl);
        if (r == 1)
            break;
        int e = SSL_get_error(t->ssl, r);
        if (e != SSL_ERROR_WANT_READ) {
            int rc = failure(t);
            /* The alert goes to the peer, which is waiting for it. */
            (void)flush_wait(t);
            return rc;
        }
        int rc = flush_wait(t);
        if (rc < 0)
            return rc;
        ssize_t got = fill(t);
        if (got == 0)
            return wf_tls_fail_text(-EPIPE, "the peer closed the connection "
                                            "during the TLS handshake");
        if (got < 0)
            return (int)got;
    }
    /* The last flight (a server's tickets, a client's Finished). */
    int rc = flush_wait(t);
    if (rc < 0)
        return rc;
    t->handshaken = true;
    const unsigned char *p = NULL;
    unsigned n = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &n);
    if (n)
        memcpy(t->alpn, p, n); /* n < 256: one length byte on the wire */
    t->alpn[n] = '\0';
    return ktls_try(t);
}

static bool wrap_args_ok(weft_stream **out, weft_stream *inner,
                         const weft_tls_config *c, const char *server_name)
{
    if (!out || !inner || !c)
        return false;
    if (c->server)
        return !server_name && (!c->verify || c->client_ca);
    return server_name || !c->verify;
}

WF_EXPORT int weft_tls_wrap(weft_stream **out, weft_stream *inner,
                            weft_tls_config *c, const char *server_name)
{
    if (out)
        *out = NULL;
    struct weft_task *task;
    bool closing = inner && weft_stream_closing(inner);
    int rc = wf_entry(&task, wrap_args_ok(out, inner, c, server_name), closing);
    if (rc < 0) {
        /* Owned whatever happens; one already being closed is its
         * closer's. */
        if (inner && !closing)
            weft_stream_close(inner);
        return rc;
    }
    atomic_store(&c->used, true);
    struct tls_stream *t = wf_calloc(1, sizeof *t);
    if (!t) {
        weft_stream_close(inner);
        return -ENOMEM;
    }
    t->inner = inner;
    t->cfg = c;
    wf_tls_config_get(c);
    wf_list_init(&t->flush_waiters);
    if (!(t->in = wf_malloc(WF_TLS_IN)))
        rc = -ENOMEM;
    if (rc == 0)
        rc = ssl_setup(t, server_name);
    if (rc == 0)
        rc = handshake(t);
    if (rc < 0) {
        weft_stream_close(inner);
        tls_free(t);
        return rc;
    }
    return weft_stream_new(out, &tls_ops, t);
}

/* ---- a stream's state ---- */

WF_EXPORT const char *weft_tls_alpn(const weft_stream *s)
{
    struct tls_stream *t = tls_of(s);
    return t && t->alpn[0] ? t->alpn : NULL;
}

WF_EXPORT const char *weft_tls_version(const weft_stream *s)
{
    struct tls_stream *t = tls_of(s);
    return t ? SSL_get_version(t->ssl) : NULL;
}

WF_EXPORT const char *weft_tls_cipher(const weft_stream *s)
{
    struct tls_stream *t = tls_of(s);
    return t ? SSL_get_cipher_name(t->ssl) : NULL;
}

WF_EXPORT const char *weft_tls_server_name(const weft_stream *s)
{
    struct tls_stream *t = tls_of(s);
    if (!t)
        return NULL;
    return t->cfg->server
               ? SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name)
               : t->server_name;
}

WF_EXPORT bool weft_tls_resumed(const weft_stream *s)
{
    struct tls_stream *t = tls_of(s);
    return t && SSL_session_reused(t->ssl);
}

WF_EXPORT int weft_tls_ktls(const weft_stream *s)
{
    struct tls_stream *t = tls_of(s);
    return t ? t->ktls : 0;
}

WF_EXPORT void *weft_tls_ssl(const weft_stream *s)
{
    struct tls_stream *t = tls_of(s);
    return t ? t->ssl : NULL;
}
