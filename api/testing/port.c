/* SPDX-License-Identifier: MIT */
/*
 * api/testing/port.c - weft_free_port: a port the kernel handed out on
 * 127.0.0.1 a moment ago (anyio's free_tcp_port). Another program may
 * take it before the caller binds it; tests that must not race listen on
 * port 0 and ask the listener instead.
 */
#include "engine/engine.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <weft/testing.h>

WF_EXPORT int weft_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in sin = {
        .sin_family = AF_INET,
        .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
        .sin_port = 0,
    };
    socklen_t len = sizeof sin;
    int rc = 0;
    if (bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
        getsockname(fd, (struct sockaddr *)&sin, &len) < 0)
        rc = -errno;
    wf_close(fd);
    return rc < 0 ? rc : ntohs(sin.sin_port);
}
