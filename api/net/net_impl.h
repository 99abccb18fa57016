/* SPDX-License-Identifier: MIT */
/*
 * api/net/net_impl.h - what the files of api/net/ share: the listener,
 * resolving, sockets. Internal.
 */
#ifndef WF_API_NET_IMPL_H
#define WF_API_NET_IMPL_H

#include "api/stream/stream_impl.h"

#include <netdb.h>
#include <sys/socket.h>
#include <weft/net.h>

struct wf_acceptor {
    struct wf_completion c;
    struct weft_listener *l;
    int fd;
    bool armed, multishot;
};

struct weft_listener {
    struct wf_acceptor acc[8];
    int nacc;
    int port;
    bool tcp, multishot;
    struct wf_gate gate; /* accepts and armed operations inside */
    int err;             /* an accept error to report once */
    int *q;              /* accepted, not yet taken */
    size_t qcap, qhead, qlen;
    wf_link waiters;
    size_t nwait;
    struct wf_defer pause; /* stop multishot: too many queued */
};

/* listener.c: a listener of no socket yet; add one (taking fd) per
 * address; abort frees a listener that was never handed out. */
struct weft_listener *wf_listener_new(bool tcp);
int wf_listener_add(struct weft_listener *l, int fd);
void wf_listener_abort(struct weft_listener *l);
/* serve.c's drain: stop accepting (keep: the socket keeps listening);
 * then take what was accepted already, one by one (-EAGAIN: no more). */
void wf_listener_stop(struct weft_listener *l, bool keep);
int wf_listener_take(struct weft_listener *l, weft_stream **out);

/* resolve.c: host:port as addresses of any family. */
int wf_resolve(const char *host, uint16_t port, int socktype, int flags,
               struct addrinfo **res);

/* tcp.c */
int wf_new_socket(int family, int type); /* close-on-exec; fd or -errno */
void wf_set_nodelay(int fd);
int wf_sock_port(int fd); /* the bound port, or -errno */

#endif
