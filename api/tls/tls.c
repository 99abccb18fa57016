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
 *
 * Kernel TLS. Where the kernel has it (api/tls/ktls.c), a TCP socket gets
 * the "tls" ULP before the handshake and the SSL SSL_OP_ENABLE_KTLS:
 * at each change to application keys OpenSSL hands the BIO the kernel's
 * crypto_info, which the BIO installs (ktls_set) when that loses nothing.
 * From then on OpenSSL writes plaintext to the BIO, each record of a type
 * other than data announced by a control (a ticket, an alert), and the
 * queue keeps the type with the block, sent by a sendmsg with the type as
 * a control message; with the kernel receiving, the BIO reads records by
 * recvmsg and gives OpenSSL each one behind a header made for it, as
 * OpenSSL's socket BIO does. After the handshake the stream's own sends
 * and receives bypass OpenSSL (ktls_send, ktls_recv). OpenSSL 3.0 hands
 * over both directions of TLS 1.2 and the send direction of TLS 1.3
 * (receiving in TLS 1.3 stays here; OpenSSL 3.2 on hands it over too).
 */
#include "api/stream/stream_impl.h"
#include "api/tls/tls_impl.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/transport.h>
#include <weft/uring.h>

/* The input buffer: two full records (16 KiB of plaintext, 256 bytes of
 * overhead each) per receive from the transport. */
#define WF_TLS_IN 34304
/* An output block's size, and how much plaintext one SSL_write takes:
 * a send of 16 MiB is encrypted and flushed 64 KiB at a time. */
#define WF_TLS_OUT_BLOCK 70000
#define WF_TLS_CHUNK 65536
/* sendv gathers pieces into whole records of this many bytes (the most
 * plaintext a record holds). */
#define WF_TLS_RECORD 16384
/* A record's header: type, version (2), length (2). */
#define WF_TLS_HEADER 5

/* OpenSSL's own BIO controls for kTLS (internal in OpenSSL 3: bio.h lists
 * them in a comment), which a BIO that is not OpenSSL's socket BIO
 * answers to take the keys. */
#define WF_BIO_CTRL_SET_KTLS 72
#define WF_BIO_CTRL_SET_KTLS_TX_SEND_CTRL_MSG 74
#define WF_BIO_CTRL_CLEAR_KTLS_TX_CTRL_MSG 75

struct out_block {
    struct out_block *next;
    size_t head, tail, cap; /* bytes [head, tail) still to send */
    unsigned char type;     /* kTLS: the record type of the block, 0 none */
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
    /* kernel TLS */
    bool ulp;            /* the socket has the "tls" ULP */
    bool bio_tx, bio_rx; /* the kernel has the keys of that direction */
    unsigned char ctrl;  /* the record type of OpenSSL's next write */
    bool rekey;          /* OpenSSL wanted a KeyUpdate the kernel cannot do */
    bool peer_closed;    /* kernel receiving: close_notify came */
    unsigned char hdr[WF_TLS_HEADER]; /* the record header being read */
    size_t hdr_len, rec_left; /* where the bytes read stand in records */
};

static const weft_transport tls_ops;

static struct tls_stream *tls_of(const weft_stream *s)
{
    return s && wf_stream_transport(s) == &tls_ops ? weft_stream_impl(s) : NULL;
}

/* ---- the BIO: OpenSSL's view of the two buffers ---- */

/* The block a write of n bytes of a record type (0: bytes as they are)
 * goes to: the tail if it takes them, else a new one. A typed write is
 * one record of the kernel's: a block of its own. NULL: no memory. */
static struct out_block *out_room(struct tls_stream *t, size_t n,
                                  unsigned char type)
{
    struct out_block *k = t->out_tail;
    if (k && !t->out_len && (k->type || type)) {
        /* The one block left, emptied (nothing in flight from it), of
         * the other kind. */
        wf_free(k);
        t->out_head = t->out_tail = k = NULL;
    }
    if (k && k->tail < k->cap && !k->type && !type)
        return k;
    size_t cap = type || n > WF_TLS_OUT_BLOCK ? n : WF_TLS_OUT_BLOCK;
    if (!(k = wf_malloc(sizeof *k + cap)))
        return NULL;
    k->next = NULL;
    k->head = k->tail = 0;
    k->cap = cap;
    k->type = type;
    if (t->out_tail)
        t->out_tail->next = k;
    else
        t->out_head = k;
    t->out_tail = k;
    return k;
}

/* Whether a handshake record holds a KeyUpdate (type 24). */
static bool has_key_update(const unsigned char *p, size_t n)
{
    while (n >= 4) {
        if (p[0] == 24)
            return true;
        size_t len = 4 + ((size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3]);
        if (len > n)
            break;
        p += len;
        n -= len;
    }
    return false;
}

static int bio_write(BIO *b, const char *data, int len)
{
    struct tls_stream *t = BIO_get_data(b);
    size_t n = (size_t)len;
    unsigned char type = t->ctrl;
    t->ctrl = 0;
    /* The kernel keeps its keys (Linux 6.1 cannot change them): a
     * KeyUpdate sent would make OpenSSL's keys and the kernel's part. */
    if (type == WF_TLS_RT_HANDSHAKE &&
        has_key_update((const unsigned char *)data, n)) {
        t->rekey = true;
        return -1;
    }
    t->recv_queued |= t->reading;
    while (n) {
        struct out_block *k = out_room(t, n, type);
        if (!k) {
            t->oom = true; /* OpenSSL fails the call: -ENOMEM */
            return -1;
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

static void flush_nowait(struct tls_stream *t);
static long ktls_set(struct tls_stream *t, const void *crypto_info, bool tx);

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    struct tls_stream *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        /* OpenSSL flushes before it hands over the send keys: what is
         * queued goes now if the socket takes it at once (ktls_set needs
         * the queue empty). Otherwise the flusher sends; OpenSSL need not
         * wait. */
        if (t->ulp && !t->handshaken && !t->flushing)
            flush_nowait(t);
        return 1;
    case BIO_CTRL_PENDING:
        return (long)t->in_len;
    case BIO_CTRL_WPENDING:
        return (long)t->out_len;
    case WF_BIO_CTRL_SET_KTLS:
        return ktls_set(t, ptr, num != 0);
    case BIO_CTRL_GET_KTLS_SEND:
        return t->bio_tx;
    case BIO_CTRL_GET_KTLS_RECV:
        return t->bio_rx;
    case WF_BIO_CTRL_SET_KTLS_TX_SEND_CTRL_MSG:
        t->ctrl = (unsigned char)num;
        return 0;
    case WF_BIO_CTRL_CLEAR_KTLS_TX_CTRL_MSG:
        t->ctrl = 0;
        return 0;
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

/* One sendmsg or recvmsg on the inner stream's socket through the ring,
 * with that side of the inner stream claimed, as send_some does (its
 * close cancels it): the bytes moved, or -errno. */
static ssize_t inner_msg(struct tls_stream *t, struct msghdr *mh, bool receive)
{
    weft_stream *s = t->inner;
    int rc = wf_stream_claim(s, 0, receive);
    if (rc < 0)
        return rc;
    ssize_t n = -EBADF;
    struct io_uring_sqe *sqe = wf_stream_closing(s) ? NULL : wf_stream_sqe(s);
    if (sqe) {
        int fd = weft_stream_fd(s);
        if (receive)
            io_uring_prep_recvmsg(sqe, fd, mh, 0);
        else
            io_uring_prep_sendmsg(sqe, fd, mh, MSG_NOSIGNAL);
        n = wf_stream_await(s, sqe,
                            receive ? "weft_stream_recv (kernel TLS)"
                                    : "weft_stream_send (kernel TLS)");
    }
    wf_stream_unclaim(s, receive);
    return n;
}

/* One transfer from the head block: a typed one is a record for the
 * kernel, its type in a control message (TLS_SET_RECORD_TYPE). Should
 * the kernel take part of it, the rest goes as a record of its own: a
 * handshake message may span records, and an alert is two bytes. */
static ssize_t send_block(struct tls_stream *t, struct out_block *k)
{
    if (!k->type)
        return send_some(t->inner, k->data + k->head, k->tail - k->head);
    struct iovec iov = {k->data + k->head, k->tail - k->head};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    wf_ktls_cmsg cb;
    wf_ktls_set_type(&mh, &cb, k->type);
    ssize_t n = inner_msg(t, &mh, false);
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
        ssize_t n = send_block(t, t->out_head);
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

/* Follow the record boundaries in n bytes read from the socket, so that
 * the BIO knows where the next record begins (ktls_set). */
static void track_records(struct tls_stream *t, const unsigned char *p,
                          size_t n)
{
    while (n) {
        if (t->rec_left) {
            size_t k = n < t->rec_left ? n : t->rec_left;
            t->rec_left -= k;
            p += k;
            n -= k;
            continue;
        }
        t->hdr[t->hdr_len++] = *p++;
        n--;
        if (t->hdr_len == WF_TLS_HEADER) {
            t->rec_left = (size_t)t->hdr[3] << 8 | t->hdr[4];
            t->hdr_len = 0;
        }
    }
}

/* How much one receive from the socket may take. With the ULP on and the
 * handshake under way, no byte past the record being read: OpenSSL may
 * hand the receive keys to the kernel after any record, and bytes read
 * beyond it would never reach the kernel. (A header, then its body: two
 * receives a record, only where OpenSSL can hand over the receive keys:
 * not TLS 1.3 with OpenSSL before 3.2.) */
static size_t fill_max(struct tls_stream *t)
{
    if (!t->ulp || t->handshaken ||
        (SSL_version(t->ssl) == TLS1_3_VERSION &&
         OpenSSL_version_num() < 0x30200000L))
        return WF_TLS_IN;
    if (!t->rec_left)
        return WF_TLS_HEADER - t->hdr_len;
    return t->rec_left < WF_TLS_IN ? t->rec_left : WF_TLS_IN;
}

/* One record from the kernel (which has the receive keys), decrypted:
 * into buf, at most max bytes (a whole record if max >= 16 KiB; data
 * records may come several at once), its type in *type. EBADMSG is a
 * record that failed the kernel's check. */
static ssize_t ktls_recvmsg(struct tls_stream *t, void *buf, size_t max,
                            int *type)
{
    struct iovec iov = {buf, max};
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    wf_ktls_cmsg cb;
    wf_ktls_want_type(&mh, &cb);
    ssize_t n = inner_msg(t, &mh, true);
    if (n == -EBADMSG)
        return wf_tls_fail_text(-EPROTO, "a TLS record failed the kernel's "
                                         "decryption (bad record MAC)");
    *type = wf_ktls_type(&mh);
    return n;
}

/* With the kernel receiving during the handshake: a record as OpenSSL's
 * socket BIO gives it, a header made for it then its plaintext. */
static ssize_t fill_record(struct tls_stream *t)
{
    int type = 0; /* set by ktls_recvmsg when it returns bytes */
    unsigned char *in = (unsigned char *)t->in;
    ssize_t n = ktls_recvmsg(t, in + WF_TLS_HEADER, WF_TLS_RECORD, &type);
    if (n <= 0)
        return n;
    in[0] = (unsigned char)type;
    in[1] = 3;
    in[2] = 3;
    in[3] = (unsigned char)(n >> 8);
    in[4] = (unsigned char)n;
    return n + WF_TLS_HEADER;
}

/* Refill the empty input buffer from the inner stream: >0, 0 at its end,
 * or -errno (a cancelled receive took nothing). */
static ssize_t fill(struct tls_stream *t)
{
    if (t->in_eof)
        return 0;
    t->in_pos = 0;
    t->filling = true;
    ssize_t n = t->bio_rx ? fill_record(t)
                          : weft_stream_recv(t->inner, t->in, fill_max(t));
    t->filling = false;
    if (n > 0) {
        t->in_len = (size_t)n;
        if (t->ulp && !t->bio_rx)
            track_records(t, (unsigned char *)t->in, (size_t)n);
    } else if (n == 0) {
        t->in_eof = true;
    }
    return n;
}

/* A fatal TLS failure: the stream is broken from now on; the alert
 * OpenSSL queued goes to the peer if that takes no wait for another
 * flusher. */
static int failure(struct tls_stream *t)
{
    if (t->oom)
        return wf_tls_fail_text(-ENOMEM, "no memory to queue a TLS record");
    if (t->rekey)
        return wf_tls_fail_text(-EPROTO,
                                "the peer asked for a TLS 1.3 key update, "
                                "which the kernel's TLS cannot follow "
                                "(weft_tls_config_ktls off keeps the records "
                                "in userspace)");
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

/* kernel receiving: what a record other than data means. 0: go on
 * (a ticket, or a HelloRequest of TLS 1.2, which a client may ignore);
 * 1: the end (close_notify); or the failure. */
static int ktls_other(struct tls_stream *t, int type, const unsigned char *p,
                      size_t n)
{
    if (type == WF_TLS_RT_HANDSHAKE) {
        /* Tickets after the hand-off are dropped (OpenSSL no longer
         * reads): resumption uses those of the handshake. */
        if (!has_key_update(p, n))
            return 0;
        t->rekey = true;
        return t->broken = failure(t);
    }
    if (type == WF_TLS_RT_ALERT && n == 2 && p[1] == SSL_AD_CLOSE_NOTIFY) {
        t->peer_closed = true;
        return 1;
    }
    if (type == WF_TLS_RT_ALERT && n == 2 && p[0] == SSL3_AL_WARNING)
        return 0; /* TLS 1.2's warnings (no_renegotiation, ...) */
    if (type == WF_TLS_RT_ALERT && n == 2)
        return t->broken =
                   wf_tls_fail_text(-EPROTO, "the peer sent the TLS alert %s",
                                    SSL_alert_desc_string_long(p[1]));
    return t->broken = wf_tls_fail_text(
               -EPROTO, "a TLS record of type %d from the peer", type);
}

/* The kernel has the receive keys: a recvmsg, straight into buf when it
 * holds a whole record, else into the input buffer, whose rest the next
 * receives take. A cancelled recvmsg took nothing. */
static ssize_t ktls_recv(struct tls_stream *t, void *buf, size_t max)
{
    for (;;) {
        if (t->in_len) {
            size_t n = t->in_len < max ? t->in_len : max;
            memcpy(buf, t->in + t->in_pos, n);
            t->in_pos += n;
            t->in_len -= n;
            return (ssize_t)n;
        }
        if (t->peer_closed)
            return 0;
        bool direct = max >= WF_TLS_RECORD;
        unsigned char *p = direct ? buf : (unsigned char *)t->in;
        int type = 0; /* set by ktls_recvmsg when it returns bytes */
        ssize_t n = ktls_recvmsg(t, p, direct ? max : WF_TLS_RECORD, &type);
        if (n == -EPROTO)
            return t->broken = -EPROTO;
        if (n == 0)
            return ended(t);
        if (n < 0)
            return n;
        if (type == WF_TLS_RT_DATA && direct)
            return n;
        if (type == WF_TLS_RT_DATA) {
            t->in_pos = 0;
            t->in_len = (size_t)n;
            continue;
        }
        int rc = ktls_other(t, type, p, (size_t)n);
        if (rc)
            return rc > 0 ? 0 : rc;
    }
}

static ssize_t tls_recv(void *impl, void *buf, size_t max)
{
    struct tls_stream *t = impl;
    if (t->broken)
        return t->broken;
    if (t->ktls & WEFT_TLS_KTLS_RECV)
        return ktls_recv(t, buf, max);
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

/* The kernel has the send keys: the iovecs, sendmsg after sendmsg until
 * all went (the kernel makes the records). This task is the flusher
 * meanwhile, so that records the receiver queues (none but an alert)
 * wait for it and go after. A send cancelled after bytes went breaks
 * the send side, as in userspace. */
static ssize_t ktls_send(struct tls_stream *t, struct iovec *iov, int iovcnt)
{
    /* The peer asked for a key update (TLS 1.3): OpenSSL owes it a
     * KeyUpdate before the next data, which it would send at its next
     * SSL_write, under keys the kernel does not have. */
    if (SSL_get_key_update_type(t->ssl) != SSL_KEY_UPDATE_NONE) {
        t->rekey = true;
        return t->broken = failure(t);
    }
    int rc = flush_wait(t); /* control records queued go first */
    if (rc < 0)
        return rc == -ECANCELED ? rc : send_failed(t, rc);
    size_t total = 0, done = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)iovcnt};
    ssize_t n = 0;
    t->flushing = true;
    while (done < total) {
        if ((n = inner_msg(t, &mh, false)) <= 0)
            break;
        done += (size_t)n;
        for (size_t k = (size_t)n; k;) { /* step past what went */
            size_t take = k < mh.msg_iov->iov_len ? k : mh.msg_iov->iov_len;
            mh.msg_iov->iov_base = (char *)mh.msg_iov->iov_base + take;
            mh.msg_iov->iov_len -= take;
            k -= take;
            if (!mh.msg_iov->iov_len && mh.msg_iovlen > 1) {
                mh.msg_iov++;
                mh.msg_iovlen--;
            }
        }
    }
    t->flushing = false;
    rc = flush_all(t); /* what the receiver queued; wakes the waiters */
    if (n <= 0)
        return done || n != -ECANCELED ? send_failed(t, n ? (int)n : -EIO)
                                       : (ssize_t)n;
    return rc < 0 && rc != -ECANCELED ? send_failed(t, rc) : (ssize_t)total;
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
        return ktls_send(t, &(struct iovec){(void *)buf, len}, 1);
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

/* A copy of the caller's iovecs, which ktls_send steps through. */
static ssize_t ktls_sendv(struct tls_stream *t, const struct iovec *iov,
                          int iovcnt)
{
    struct iovec *v = wf_malloc(sizeof *v * (size_t)iovcnt);
    if (!v)
        return -ENOMEM;
    memcpy(v, iov, sizeof *v * (size_t)iovcnt);
    ssize_t n = ktls_send(t, v, iovcnt);
    wf_free(v);
    return n;
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
        return ktls_sendv(t, iov, iovcnt);
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
        struct iovec iov = {k->data + k->head, k->tail - k->head};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        wf_ktls_cmsg cb;
        if (k->type)
            wf_ktls_set_type(&mh, &cb, k->type);
        ssize_t n = sendmsg(fd, &mh, MSG_DONTWAIT | MSG_NOSIGNAL);
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
    if (t->handshaken && !t->broken && !t->send_broken && !t->shutdown_sent) {
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

/*
 * OpenSSL hands the BIO one direction's keys (BIO_CTRL_SET_KTLS, from
 * tls1_change_cipher_state / tls13_change_cipher_state): install them if
 * nothing is lost by it, else say no (0) and OpenSSL keeps the records.
 * Send: the queue must be empty, every record encrypted here already on
 * the wire before the kernel encrypts (OpenSSL flushed just before: what
 * the socket did not take at once stays, and so do the records). Receive:
 * every byte read from the socket given to OpenSSL, at a record boundary
 * (fill_max), none in the inner stream's read-ahead, and no multishot
 * receive on it (weft_stream_set_multishot) that could take the next.
 */
static long ktls_set(struct tls_stream *t, const void *crypto_info, bool tx)
{
    int fd = weft_stream_fd(t->inner);
    if (!t->ulp || t->flushing || fd < 0)
        return 0;
    if (tx) {
        flush_nowait(t);
        if (t->out_len)
            return 0;
    } else if (t->in_len || t->hdr_len || t->rec_left || t->inner->rlen ||
               weft_stream_buffered(wf_stream_bottom(t->inner)) ||
               wf_sock_multishot_on(wf_stream_bottom(t->inner))) {
        return 0; /* bytes the kernel would not see, or may take */
    }
    if (wf_ktls_install(fd, crypto_info, tx) < 0)
        return 0;
    if (tx)
        t->bio_tx = true;
    else
        t->bio_rx = true;
    return 1;
}

/* Before the handshake: the ULP on the socket, and OpenSSL asked to hand
 * the keys over, where this stream may use the kernel (a TCP socket, its
 * configuration and WEFT_TLS_KTLS not against, the kernel able). Any
 * refusal leaves the records in userspace, never fails the handshake. */
static void ktls_prepare(struct tls_stream *t)
{
    int fd = weft_stream_fd(t->inner);
    if (!t->cfg->ktls || fd < 0 || !wf_ktls_wanted() || !wf_ktls_attach(fd))
        return;
    t->ulp = true;
    SSL_set_options(t->ssl, SSL_OP_ENABLE_KTLS);
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
    ktls_prepare(t);
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
    t->ktls = (t->bio_tx ? WEFT_TLS_KTLS_SEND : 0) |
              (t->bio_rx ? WEFT_TLS_KTLS_RECV : 0);
    return 0;
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
