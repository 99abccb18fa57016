/* SPDX-License-Identifier: MIT */
/*
 * api/net/resolve.c - name resolution: weft_getaddrinfo on the worker
 * pool (numbers parsed on the loop), abandoned without leaks when the
 * caller is cancelled, and the host:port helper the sockets share.
 */
#include "api/net/net_impl.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <weft/thread.h>

/* ---- resolving ---- */

static int gai_errno(int e, int sys_errno)
{
    switch (e) {
    case 0:
        return 0;
    case EAI_NONAME:
    case EAI_NODATA:
    case EAI_ADDRFAMILY:
    case EAI_SERVICE:
        return -ENOENT;
    case EAI_AGAIN:
        return -EAGAIN;
    case EAI_FAIL:
        return -EIO;
    case EAI_MEMORY:
        return -ENOMEM;
    case EAI_SYSTEM:
        return sys_errno ? -sys_errno : -EIO;
    default:
        return -EINVAL;
    }
}

/*
 * A lookup the task may give up on (a name server that never answers must
 * not hold a cancelled task): the worker and the task race to the end
 * through `state`, and whichever comes second frees the call and its
 * result, so an abandoned lookup leaks nothing.
 */
enum { GAI_RUNNING, GAI_DONE, GAI_ABANDONED };

struct gai_call {
    char *host, *service;
    struct addrinfo hints;
    bool has_hints;
    struct addrinfo *res;
    int rc, sys_errno;
    _Atomic int state;
};

static void gai_free(struct gai_call *c)
{
    if (c->res)
        freeaddrinfo(c->res);
    wf_free(c->host);
    wf_free(c->service);
    wf_free(c);
}

static int gai_worker(void *arg)
{
    struct gai_call *c = arg;
    c->rc = getaddrinfo(c->host, c->service, c->has_hints ? &c->hints : NULL,
                        &c->res);
    c->sys_errno = errno;
    if (atomic_exchange(&c->state, GAI_DONE) == GAI_ABANDONED)
        gai_free(c);
    return 0;
}

static struct gai_call *gai_new(const char *host, const char *service,
                                const struct addrinfo *hints)
{
    struct gai_call *c = wf_calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->host = host ? wf_strdup(host) : NULL;
    c->service = service ? wf_strdup(service) : NULL;
    if ((host && !c->host) || (service && !c->service)) {
        gai_free(c);
        return NULL;
    }
    if (hints) {
        c->hints = *hints;
        c->hints.ai_next = NULL;
        c->hints.ai_addr = NULL;
        c->hints.ai_canonname = NULL;
        c->has_hints = true;
    }
    atomic_init(&c->state, GAI_RUNNING);
    return c;
}

WF_EXPORT int weft_getaddrinfo(const char *host, const char *service,
                               const struct addrinfo *hints,
                               struct addrinfo **res)
{
    struct weft_task *t;
    int rc = wf_entry(&t, res && (host || service), false);
    if (rc < 0)
        return rc;
    *res = NULL;
    /* Numbers need no name service: parse them here, on the loop. */
    struct addrinfo num = {0};
    if (hints)
        num = *hints;
    num.ai_flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    rc = getaddrinfo(host, service, &num, res);
    if (rc != EAI_NONAME)
        return gai_errno(rc, errno);
    struct gai_call *c = gai_new(host, service, hints);
    if (!c)
        return -ENOMEM;
    bool submitted;
    rc = wf_to_thread(gai_worker, c, NULL, WEFT_ABANDON_ON_CANCEL, &submitted);
    if (rc < 0 && !submitted) { /* the job never ran */
        gai_free(c);
        return rc;
    }
    if (rc == -ECANCELED) {
        if (atomic_exchange(&c->state, GAI_ABANDONED) == GAI_DONE)
            gai_free(c); /* it finished, but too late for us */
        return rc;
    }
    rc = gai_errno(c->rc, c->sys_errno);
    if (rc == 0) {
        *res = c->res;
        c->res = NULL;
    }
    gai_free(c);
    return rc;
}

/* host:port as addresses of any family (no AI_ADDRCONFIG: it hides IPv6
 * loopback on hosts whose only real address is IPv4; a family the
 * machine lacks fails at socket() instead). */
int wf_resolve(const char *host, uint16_t port, int socktype, int flags,
               struct addrinfo **res)
{
    char service[8];
    snprintf(service, sizeof service, "%u", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = socktype,
        .ai_flags = flags,
    };
    return weft_getaddrinfo(host, service, &hints, res);
}
