/* SPDX-License-Identifier: MIT */
/*
 * net_restart.c - restarting a server without dropping a connection.
 *
 * The listening socket outlives the process image: the server re-execs
 * itself (execv of /proc/self/exe) with the socket's fd number in an
 * environment variable, the fd not close-on-exec, and the new image takes
 * it back with weft_listener_from_fd. Before each exec the old image
 * drains (weft_serve_opts.drain_grace) with drain_keep_listening set: it
 * stops accepting, finishes what it accepted, and leaves new connections
 * waiting in the kernel's backlog for the next image. Socket activation
 * (systemd's LISTEN_FDS) hands a listener over the same way.
 *
 * A client process (forked before the first image) connects 60 times,
 * one request each, through two restarts; every request must be
 * answered. The last image waits for it and exits with its status.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft.h>

enum { GENERATIONS = 3, REQUESTS = 60 };

static int gen;
static pid_t client_pid;
static int listen_fd; /* the inherited one: never close-on-exec */

/* The client: plain blocking sockets, in a child process. */
static int client(uint16_t port)
{
    int failed = 0;
    for (int i = 0; i < REQUESTS; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sin = {.sin_family = AF_INET,
                                  .sin_port = htons(port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        char buf[8] = {0};
        if (connect(fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
            write(fd, "ping\n", 5) != 5 || read(fd, buf, 5) != 5 ||
            memcmp(buf, "pong\n", 5) != 0)
            failed++;
        close(fd);
        usleep(10000);
    }
    printf("client: %d of %d requests failed\n", failed, REQUESTS);
    fflush(stdout);
    return failed ? 1 : 0;
}

static int handle(weft_stream *conn, void *arg)
{
    (void)arg;
    char buf[8];
    ssize_t n = weft_stream_recv_until(conn, buf, sizeof buf, "\n", 1);
    if (n < 0)
        return (int)n;
    weft_sleep(20 * WEFT_MSEC); /* some work */
    return (int)weft_stream_send(conn, "pong\n", 5) < 0 ? -EPIPE : 0;
}

struct server {
    weft_listener *l;
    weft_scope scope;
    int client_status;
};

static int serve(void *arg)
{
    struct server *s = arg;
    weft_serve_opts o = {.drain_grace = 2 * WEFT_SEC,
                         .drain_keep_listening = true};
    weft_scope_enter(&s->scope, WEFT_FOREVER);
    int rc = weft_listener_serve_opts(s->l, handle, NULL, &o);
    return weft_scope_exit(&s->scope, rc);
}

static int reap_client(void *arg)
{
    int st = 0;
    waitpid(client_pid, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 1;
}

static int app_main(void *arg)
{
    struct server *s = arg;
    /* weft's own copy is close-on-exec; listen_fd stays for the next. */
    int rc = weft_listener_from_fd(&s->l, fcntl(listen_fd, F_DUPFD_CLOEXEC, 0));
    if (rc < 0)
        return rc;
    weft_group g;
    weft_group_enter(&g);
    weft_group_spawn(&g, serve, s);
    if (gen + 1 < GENERATIONS) {
        weft_sleep(200 * WEFT_MSEC); /* serve a while, then restart */
    } else {
        s->client_status = weft_to_thread(reap_client, NULL, NULL, 0);
    }
    weft_scope_cancel(&s->scope); /* drain */
    rc = weft_group_exit(&g, 0);
    weft_listener_close(s->l);
    return rc;
}

int main(void)
{
    const char *e = getenv("WEFT_RESTART_FD");
    if (!e) { /* the first image: the socket and the client */
        listen_fd = socket(AF_INET, SOCK_STREAM, 0); /* no CLOEXEC */
        struct sockaddr_in sin = {.sin_family = AF_INET,
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof sin;
        if (bind(listen_fd, (struct sockaddr *)&sin, sizeof sin) < 0 ||
            listen(listen_fd, 128) < 0 ||
            getsockname(listen_fd, (struct sockaddr *)&sin, &len) < 0)
            return 1;
        fflush(stdout);
        client_pid = fork();
        if (client_pid == 0) {
            close(listen_fd);
            _exit(client(ntohs(sin.sin_port)));
        }
    } else {
        listen_fd = atoi(e);
        gen = atoi(getenv("WEFT_RESTART_GEN"));
        client_pid = atoi(getenv("WEFT_RESTART_CLIENT"));
    }
    struct server s = {0};
    int rc = weft_run(app_main, &s, NULL);
    if (rc < 0) {
        fprintf(stderr, "net_restart: %s\n", weft_strerror(rc));
        return 1;
    }
    if (gen + 1 < GENERATIONS) {
        char v[3][16];
        snprintf(v[0], sizeof v[0], "%d", listen_fd);
        snprintf(v[1], sizeof v[1], "%d", gen + 1);
        snprintf(v[2], sizeof v[2], "%d", (int)client_pid);
        setenv("WEFT_RESTART_FD", v[0], 1);
        setenv("WEFT_RESTART_GEN", v[1], 1);
        setenv("WEFT_RESTART_CLIENT", v[2], 1);
        printf("image %d: restarting\n", gen);
        fflush(stdout);
        char *argv[] = {"net_restart", NULL};
        execv("/proc/self/exe", argv);
        perror("execv");
        return 1;
    }
    printf("image %d: client exited %d\n", gen, s.client_status);
    return s.client_status == 0 ? 0 : 1;
}
