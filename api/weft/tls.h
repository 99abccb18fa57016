/* SPDX-License-Identifier: MIT */
/*
 * weft/tls.h - TLS streams (anyio's TLSStream), with OpenSSL 3 under
 * them: weft_tls_wrap turns a connected stream into a TLS stream, which
 * is a weft_stream like any other (recv_until, sendv, close, ...).
 *
 * OpenSSL reads and writes only memory: every byte goes through the
 * inner stream, so through the ring, with the caller's scopes and
 * deadlines; there is no blocking socket and no OpenSSL thread.
 *
 * Errors: a client whose peer's certificate chain or name does not
 * verify gets -EKEYREJECTED; any other TLS failure (a bad record, an
 * alert from the peer, no protocol in common) is -EPROTO; weft_tls_error
 * gives OpenSSL's reason as text. After -EPROTO, -EKEYREJECTED or a
 * cancelled send a TLS stream is broken (see below); close it.
 *
 * Close and end of stream: send_eof sends close_notify (the stream can
 * still receive); recv returns 0 after the peer's close_notify; an end of
 * the transport without it is -EPIPE (-ECONNRESET if the peer reset the
 * connection), unless weft_tls_config_allow_truncation said otherwise.
 * weft_stream_close does not wait for the peer: it sends close_notify
 * only if that takes no waiting (the transport takes it at once), then
 * closes the inner stream.
 *
 * Cancellation. A cancelled handshake makes weft_tls_wrap return
 * -ECANCELED with the inner stream closed. A cancelled receive loses
 * nothing: bytes taken from the transport stay with the TLS stream, and
 * the next receive goes on from there. A cancelled send (or sendv) may
 * have put part of its bytes on the wire as records the peer will read;
 * the TLS stream's send side is then broken: later sends and send_eof
 * return -EPIPE. Receiving and close still work.
 */
#ifndef WEFT_TLS_H
#define WEFT_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <weft/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_tls_config weft_tls_config;

/* A client configuration verifying servers against ca_file (PEM; NULL:
 * the system's trust store). Not a checkpoint; any thread. */
int weft_tls_config_client(weft_tls_config **out, const char *ca_file);
/* A server configuration with its certificate chain and key (PEM). */
int weft_tls_config_server(weft_tls_config **out, const char *cert_file,
                           const char *key_file);
/* Drops the caller's reference: streams made with c keep it alive until
 * they are closed. NULL does nothing. */
void weft_tls_config_free(weft_tls_config *c);
/*
 * The handshake over inner (a checkpoint, with the caller's scopes and
 * deadlines); owns inner from then on, whatever it returns (on failure
 * inner is closed and *out is NULL). server_name: a client's SNI and the
 * name checked against the certificate (a DNS name or an IP address;
 * NULL: no SNI and, with verification on, -EINVAL); NULL on a server.
 * One config may serve any number of streams on any number of threads.
 */
int weft_tls_wrap(weft_stream **out, weft_stream *inner, weft_tls_config *c,
                  const char *server_name);

/*
 * Options: set before the config's first weft_tls_wrap (-EBUSY after).
 * -EINVAL for a bad argument or an option of the other side; a file that
 * cannot be used is -ENOENT, -EACCES or -EPROTO (with weft_tls_error).
 */
/* ALPN: protocols in order of preference ("h2", "http/1.1"). A client
 * offers them; a server picks the first of its own the client offers,
 * and a client offering ALPN but none of the server's fails the
 * handshake (-EPROTO, the no_application_protocol alert). */
int weft_tls_config_alpn(weft_tls_config *c, const char *const *protocols,
                         size_t n);
/* Client: verification of the server (on by default; off only for
 * tests: any certificate and any name are accepted). Server: require a
 * certificate from every client (mutual TLS; needs a client CA). */
int weft_tls_config_verify(weft_tls_config *c, bool on);
/* Server: ask clients for a certificate signed by a CA of ca_file and
 * require it (a client with none, or another, fails: -EPROTO on both
 * sides, -EKEYREJECTED on the server when its chain does not verify). */
int weft_tls_config_client_ca(weft_tls_config *c, const char *ca_file);
/* Client: the certificate it presents when a server asks (mutual TLS).
 * Server: one more certificate, chosen when the client's SNI matches one
 * of its names (the one given to weft_tls_config_server is the default). */
int weft_tls_config_certificate(weft_tls_config *c, const char *cert_file,
                                const char *key_file);
#define WEFT_TLS_1_2 0x0303
#define WEFT_TLS_1_3 0x0304
/* The oldest version accepted: WEFT_TLS_1_2 (the default) or _1_3. */
int weft_tls_config_min_version(weft_tls_config *c, int version);
/* Session resumption (on by default): a server issues tickets; a client
 * keeps the last session of each server name and offers it again. */
int weft_tls_config_resumption(weft_tls_config *c, bool on);
/* anyio's standard_compatible=False: an end of the transport without
 * close_notify is an end of stream (recv returns 0), as HTTP/1.1 with a
 * length allows. Off by default (-EPIPE). */
int weft_tls_config_allow_truncation(weft_tls_config *c, bool on);
/* Kernel TLS (on by default where the kernel has it, over TCP): the
 * directions OpenSSL can hand over (TLS 1.2 both, TLS 1.3 the send
 * direction with OpenSSL 3.0) move into the kernel during the handshake,
 * and the stream's sends and receives are plain ring operations on the
 * socket; anything refused stays in userspace. WEFT_TLS_KTLS=0 in the
 * environment turns it off for the process. With the kernel sending, a
 * TLS 1.3 peer's request for a key update makes the next send -EPROTO
 * (the kernel cannot change its keys). */
int weft_tls_config_ktls(weft_tls_config *c, bool on);
/* The OpenSSL SSL_CTX (an SSL_CTX *) for what weft does not wrap; set
 * what you need on it before the first wrap. */
void *weft_tls_config_ssl_ctx(weft_tls_config *c);

/* A TLS stream's state after the handshake (NULL or 0 for a stream that
 * is not TLS): */
const char *weft_tls_alpn(const weft_stream *s);        /* agreed, or NULL */
const char *weft_tls_version(const weft_stream *s);     /* "TLSv1.3" */
const char *weft_tls_cipher(const weft_stream *s);      /* OpenSSL's name */
const char *weft_tls_server_name(const weft_stream *s); /* the SNI */
bool weft_tls_resumed(const weft_stream *s);            /* a resumed session */
#define WEFT_TLS_KTLS_SEND 1
#define WEFT_TLS_KTLS_RECV 2
int weft_tls_ktls(const weft_stream *s);  /* which directions the kernel has */
void *weft_tls_ssl(const weft_stream *s); /* the OpenSSL SSL * */
/* Whether this kernel offers kernel TLS (TCP_ULP "tls"); probed once. */
bool weft_tls_ktls_available(void);
/* The reason of the calling thread's last TLS failure, as OpenSSL puts
 * it ("certificate verify failed: certificate has expired"), copied to
 * buf (truncated, always terminated); the length of the whole text, 0 if
 * there was none. */
size_t weft_tls_error(char *buf, size_t len);

#ifdef __cplusplus
}
#endif
#endif
