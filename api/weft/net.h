/* SPDX-License-Identifier: MIT */
/*
 * weft/net.h - networking (anyio's connect_tcp, create_tcp_listener,
 * create_udp_socket, connect_unix, create_unix_listener, fd passing).
 *
 * Every operation is an io_uring submission that cancel scopes and
 * deadlines reach. Streams come back as weft_stream (weft/stream.h).
 * Host names are resolved on the worker pool (weft_getaddrinfo); numeric
 * addresses are parsed on the loop thread.
 */
#ifndef WEFT_NET_H
#define WEFT_NET_H

#include <netdb.h>
#include <sys/socket.h>
#include <weft/base.h>
#include <weft/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_listener weft_listener;

/* Every resolved address, Happy Eyeballs (RFC 8305: IPv6 first, families
 * interleaved, 250 ms stagger, the first to connect wins). TCP_NODELAY on. */
int weft_tcp_connect(weft_stream **out, const char *host, uint16_t port);
/* host NULL: IPv4 and IPv6 alike (one socket each); port 0: any free one
 * (the same port for both families). SO_REUSEADDR on. */
int weft_tcp_listen(weft_listener **out, const char *host, uint16_t port);
/* A path; a leading '@' names an abstract socket ("@name"). */
int weft_unix_connect(weft_stream **out, const char *path);
int weft_unix_listen(weft_listener **out, const char *path);
int weft_listener_port(const weft_listener *l); /* bound TCP port, -EINVAL */
/* One connection; -EMFILE/-ENFILE when out of fds (the listener stays
 * usable), -EBADF once closed, -ECANCELED. */
int weft_listener_accept(weft_listener *l, weft_stream **out);
/* Each connection's handler runs as its own task; the connection is
 * closed when it returns; a failing handler is reported (stderr, or the
 * on_error of weft_listener_serve_opts), not fatal. Returns only when
 * cancelled (-ECANCELED) or on a listener error. Out of fds, it backs off
 * (5 ms doubling to 1 s) and goes on. */
int weft_listener_serve(weft_listener *l,
                        int (*handler)(weft_stream *conn, void *arg),
                        void *arg);
/* Cancels the accepts in flight, waits for them, closes every socket and
 * queued connection, frees l. */
int weft_listener_close(weft_listener *l);
/*
 * A listener over a listening socket the program already has (inherited
 * across exec, socket activation); it takes fd (and closes it on failure
 * too, except -EBADF). TCP (IPv4 or IPv6) or Unix; made close-on-exec.
 * -EINVAL: not listening (SO_ACCEPTCONN), or another family; -ENOTSOCK:
 * not a socket.
 */
int weft_listener_from_fd(weft_listener **out, int fd);

/* getaddrinfo on the worker pool; EAI_* codes become negative errno
 * (-ENOENT: no such host or service; -EAGAIN: try again; -EINVAL: bad
 * hints; -ENOMEM; -EIO: a name server failure). Free with freeaddrinfo. */
int weft_getaddrinfo(const char *host, const char *service,
                     const struct addrinfo *hints, struct addrinfo **res);
/* Wait for an fd to be readable / writable (IORING_OP_POLL_ADD). 0 also
 * on error or hang-up: the next read or write reports it. */
int weft_wait_readable(int fd);
int weft_wait_writable(int fd);
/* Over a Unix stream: a message with file descriptors (SCM_RIGHTS). */
int weft_unix_send_fds(weft_stream *s, const void *msg, size_t len,
                       const int *fds, size_t nfds);
/* The fds received are close-on-exec; extras beyond max_fds are closed. */
ssize_t weft_unix_recv_fds(weft_stream *s, void *msg, size_t max, int *fds,
                           size_t max_fds, size_t *nfds);

typedef struct weft_udp weft_udp;
/* local_host NULL: every address (IPv6 and IPv4 when dual-stack works) */
int weft_udp_open(weft_udp **out, const char *local_host, uint16_t local_port);
int weft_udp_connect(weft_udp *u, const char *host, uint16_t port);
/* to NULL on a connected socket. Returns len or -errno. */
ssize_t weft_udp_sendto(weft_udp *u, const void *buf, size_t len,
                        const struct sockaddr *to, socklen_t tolen);
/* One datagram (truncated to max); from/fromlen may be NULL. */
ssize_t weft_udp_recvfrom(weft_udp *u, void *buf, size_t max,
                          struct sockaddr_storage *from, socklen_t *fromlen);
int weft_udp_port(const weft_udp *u);
int weft_udp_close(weft_udp *u);

/* ---- options (extras) ---- */

typedef struct weft_listen_opts {
    int backlog;       /* 0 = SOMAXCONN */
    bool reuse_port;   /* SO_REUSEPORT, for one listener per core */
    bool no_multishot; /* one-shot accepts even where multishot works */
} weft_listen_opts;

int weft_tcp_listen_opts(weft_listener **out, const char *host, uint16_t port,
                         const weft_listen_opts *opts);

typedef struct weft_connect_opts {
    const char *local_host; /* bind before connecting; NULL = any */
    bool nagle;             /* keep Nagle's algorithm (TCP_NODELAY off) */
    weft_time stagger;      /* Happy Eyeballs delay; 0 = 250 ms */
} weft_connect_opts;

int weft_tcp_connect_opts(weft_stream **out, const char *host, uint16_t port,
                          const weft_connect_opts *opts);

typedef struct weft_serve_opts {
    /* Called for each failed handler (rc < 0, not -ECANCELED), after its
     * connection is closed, with serve's arg and the connection's peer as
     * getpeername gave it right after the accept (NULL and 0 if it could
     * not: a peer already gone). NULL = a line on stderr. */
    void (*on_error)(int rc, const struct sockaddr *peer, socklen_t peer_len,
                     void *arg);
    /*
     * A graceful drain (Seastar's gate, trio's soft cancellation). 0 (the
     * default): a cancellation of the serving call cancels every handler
     * at once. > 0: when the call is cancelled it stops accepting at once
     * (new connections are refused: the listening sockets are shut down,
     * unless drain_keep_listening), starts handlers for the connections
     * it had accepted already, lets every handler run on for up to
     * drain_grace (shielded from the cancellation), then cancels those
     * still running; it returns -ECANCELED once every handler has ended.
     * A listener error ends the call without a drain, as before.
     */
    weft_time drain_grace;
    /* With drain_grace: leave the sockets listening, so that connections
     * wait in the kernel's backlog for whoever accepts next (a restart
     * that hands the listening fd on). */
    bool drain_keep_listening;
} weft_serve_opts;

int weft_listener_serve_opts(weft_listener *l,
                             int (*handler)(weft_stream *conn, void *arg),
                             void *arg, const weft_serve_opts *opts);

/* ---- servers on every core ---- */

typedef struct weft_serve_cores_opts {
    unsigned cores;          /* cores 0 .. cores - 1 serve; 0 = every core */
    weft_listen_opts listen; /* backlog, no_multishot (reuse_port: always) */
    weft_serve_opts serve;   /* on_error, called on the connection's core */
    bool no_steer;           /* leave the choice of core to the kernel's hash */
    /* Called on the caller's core once every core listens: the bound port
     * (what port 0 became) and whether connections are steered to the
     * core of the CPU that received them. NULL = nothing. */
    void (*on_ready)(int port, bool steered, void *arg);
} weft_serve_cores_opts;

/*
 * Serve host:port from every core of the runtime (weft_run_cores): each
 * core opens its own SO_REUSEPORT listener (weft_tcp_listen_opts), in
 * core order, on the port core 0 bound (port 0: any free one), and serves
 * its connections on its own loop as weft_listener_serve_opts does,
 * handler(conn, arg) running on that core. Where the kernel takes a
 * classic BPF reuseport program (SO_ATTACH_REUSEPORT_CBPF), each
 * connection goes to the core pinned to the CPU that received it;
 * elsewhere (or no_steer) the kernel's hash spreads them; on_ready says
 * which. Returns when cancelled (-ECANCELED, or 0 if a scope of the
 * caller's caught it) or on a core's listener error (the others are then
 * cancelled), once every core's server has ended and every listener is
 * closed. Under weft_run it is one listener on the one core. -EINVAL: no
 * handler, or more cores than the runtime has.
 */
int weft_serve_cores(const char *host, uint16_t port,
                     int (*handler)(weft_stream *conn, void *arg), void *arg,
                     const weft_serve_cores_opts *opts);

/*
 * Kernel-enforced deadlines: when on, each receive and send of s carries
 * a linked timeout at the task's effective deadline
 * (weft_current_effective_deadline), so the kernel itself ends the
 * operation then. Off by default: the loop's timer heap already cancels
 * the operation at the deadline, and a linked timeout costs about 1 us.
 */
void weft_stream_kernel_deadlines(weft_stream *s, bool on);

#ifdef __cplusplus
}
#endif
#endif
