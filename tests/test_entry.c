/* SPDX-License-Identifier: MIT */
/*
 * tests/test_entry.c - the one order of entry checks (docs/reference
 * README, "One order of checks"): every public call that can block
 * returns -EPERM outside a loop, then its bad-argument code (-EINVAL, or
 * the -EFAULT a call documents for a NULL buffer or path), then -EBADF for
 * a closed handle, and only then a checkpoint's -ECANCELED.
 *
 * One table, one row per call form, and four checks run over it:
 *   1. the bad form outside any loop is -EPERM;
 *   2. the bad form inside a cancelled scope is its bad code, not
 *      -ECANCELED;
 *   3. the valid form inside a cancelled scope is -ECANCELED;
 *   4. a closed handle inside a cancelled scope is -EBADF, for the
 *      handles that stay valid once closed (channel ends; "no fd" for
 *      wait_readable/writable). Streams, listeners, UDP sockets and files
 *      are freed by their close, so they have no row of this kind.
 *
 * Rows marked LEAD are calls of api/stream/, api/net/listener.c,
 * api/net/udp.c and api/fs/file.c, which move to the close gate on the
 * lead's branch: their checks are the test_entry_lead_* tests, so that
 * `./test_entry 'test_entry_lead_*'` runs them alone.
 */
#include "helpers.h"

#include <sys/socket.h>
#include <sys/stat.h>

/* ---- the fixture every row is called with ---- */

struct fx {
    weft_event ev;
    weft_lock lock, cond_lock;
    weft_semaphore sem;
    weft_condition cond;
    weft_limiter lim;
    weft_chan_tx *tx, *tx_closed;
    weft_chan_rx *rx, *rx_closed;
    weft_group g;
    int pipe[2];
    weft_stream *sa, *sb;
    weft_listener *l;
    weft_udp *u;
    weft_file *f;
    char dir[64], file[96], sub[96], sock[96];
};

static char buf[16];

static int zero_fn(void *arg)
{
    (void)arg;
    return 0;
}

static int each_name(const char *name, void *arg)
{
    (void)name;
    (void)arg;
    return 0;
}

static int handler(weft_stream *conn, void *arg)
{
    (void)conn;
    (void)arg;
    return 0;
}

/* ---- engine: sync primitives, limiters, channels ---- */

static int event_wait_bad(struct fx *x)
{
    (void)x;
    return weft_event_wait(NULL);
}
static int event_wait_ok(struct fx *x)
{
    return weft_event_wait(&x->ev);
}
static int lock_acquire_bad(struct fx *x)
{
    (void)x;
    return weft_lock_acquire(NULL);
}
static int lock_acquire_ok(struct fx *x)
{
    return weft_lock_acquire(&x->lock);
}
static int sem_acquire_bad(struct fx *x)
{
    (void)x;
    return weft_semaphore_acquire(NULL);
}
static int sem_acquire_ok(struct fx *x)
{
    return weft_semaphore_acquire(&x->sem);
}
static int cond_acquire_bad(struct fx *x)
{
    (void)x;
    return weft_condition_acquire(NULL);
}
static int cond_acquire_ok(struct fx *x)
{
    return weft_condition_acquire(&x->cond);
}
static int cond_wait_bad(struct fx *x)
{
    (void)x;
    return weft_condition_wait(NULL);
}
/* Holding the lock, as the call requires; it is held again on return. */
static int cond_wait_ok(struct fx *x)
{
    int rc = weft_lock_try_acquire(&x->cond_lock);
    if (rc < 0)
        return rc;
    rc = weft_condition_wait(&x->cond);
    weft_lock_release(&x->cond_lock);
    return rc;
}
static int limiter_acquire_bad(struct fx *x)
{
    (void)x;
    return weft_limiter_acquire(NULL);
}
static int limiter_acquire_ok(struct fx *x)
{
    return weft_limiter_acquire(&x->lim);
}
static int limiter_behalf_bad(struct fx *x)
{
    return weft_limiter_acquire_on_behalf_of(&x->lim, NULL);
}
static int limiter_behalf_ok(struct fx *x)
{
    return weft_limiter_acquire_on_behalf_of(&x->lim, x);
}
static int chan_send_bad(struct fx *x)
{
    (void)x;
    return weft_chan_send(NULL, buf);
}
static int chan_send_ok(struct fx *x)
{
    return weft_chan_send(x->tx, buf);
}
static int chan_send_closed(struct fx *x)
{
    return weft_chan_send(x->tx_closed, buf);
}
static int chan_recv_bad(struct fx *x)
{
    return weft_chan_recv(x->rx, NULL);
}
static int chan_recv_ok(struct fx *x)
{
    void *it;
    return weft_chan_recv(x->rx, &it);
}
static int chan_recv_closed(struct fx *x)
{
    void *it;
    return weft_chan_recv(x->rx_closed, &it);
}

/* ---- engine: groups, threads, raw io_uring ---- */

static int group_start_bad(struct fx *x)
{
    (void)x;
    return weft_group_start(NULL, zero_fn, NULL, NULL);
}
static int group_start_ok(struct fx *x)
{
    return weft_group_start(&x->g, zero_fn, NULL, NULL);
}
static int to_thread_bad(struct fx *x)
{
    (void)x;
    return weft_to_thread(NULL, NULL, NULL, 0);
}
static int to_thread_ok(struct fx *x)
{
    (void)x;
    return weft_to_thread(zero_fn, NULL, NULL, 0);
}
static int uring_await_bad(struct fx *x)
{
    (void)x;
    return weft_uring_await(NULL);
}
static int uring_await_ok(struct fx *x)
{
    (void)x;
    struct io_uring_sqe *sqe = weft_uring_sqe();
    if (!sqe)
        return -ENOBUFS;
    io_uring_prep_nop(sqe);
    return weft_uring_await(sqe);
}
static int uring_await_until_bad(struct fx *x)
{
    (void)x;
    return weft_uring_await_until(NULL, WEFT_FOREVER);
}
static int uring_await_until_ok(struct fx *x)
{
    (void)x;
    struct io_uring_sqe *sqe = weft_uring_sqe();
    if (!sqe)
        return -ENOBUFS;
    io_uring_prep_nop(sqe);
    return weft_uring_await_until(sqe, weft_now() + WEFT_SEC);
}

/* ---- api/fs/path.c ---- */

static int path_stat_bad(struct fx *x)
{
    (void)x;
    struct statx st;
    return weft_path_stat(NULL, &st);
}
static int path_stat_ok(struct fx *x)
{
    struct statx st;
    return weft_path_stat(x->file, &st);
}
static int path_stat_null_st(struct fx *x)
{
    return weft_path_stat(x->file, NULL);
}
static int path_exists_bad(struct fx *x)
{
    (void)x;
    return weft_path_exists(NULL);
}
static int path_exists_ok(struct fx *x)
{
    return weft_path_exists(x->file);
}
static int path_mkdir_bad(struct fx *x)
{
    (void)x;
    return weft_path_mkdir(NULL, 0755);
}
static int path_mkdir_ok(struct fx *x)
{
    return weft_path_mkdir(x->sub, 0755);
}
static int path_unlink_bad(struct fx *x)
{
    (void)x;
    return weft_path_unlink(NULL);
}
static int path_unlink_ok(struct fx *x)
{
    return weft_path_unlink(x->file);
}
static int path_rmdir_bad(struct fx *x)
{
    (void)x;
    return weft_path_rmdir(NULL);
}
static int path_rmdir_ok(struct fx *x)
{
    return weft_path_rmdir(x->sub);
}
static int path_rename_bad(struct fx *x)
{
    return weft_path_rename(x->file, NULL);
}
static int path_rename_ok(struct fx *x)
{
    return weft_path_rename(x->file, x->sub);
}
static int path_read_all_bad(struct fx *x)
{
    return (int)weft_path_read_all(x->file, NULL);
}
static int path_read_all_null_path(struct fx *x)
{
    (void)x;
    void *data;
    return (int)weft_path_read_all(NULL, &data);
}
static int path_read_all_ok(struct fx *x)
{
    void *data = NULL;
    int rc = (int)weft_path_read_all(x->file, &data);
    free(data);
    return rc;
}
static int path_write_all_bad(struct fx *x)
{
    (void)x;
    return weft_path_write_all(NULL, "x", 1);
}
static int path_write_all_ok(struct fx *x)
{
    return weft_path_write_all(x->file, "x", 1);
}
static int path_list_bad(struct fx *x)
{
    return weft_path_list(x->dir, NULL, NULL);
}
static int path_list_null_dir(struct fx *x)
{
    (void)x;
    return weft_path_list(NULL, each_name, NULL);
}
static int path_list_ok(struct fx *x)
{
    return weft_path_list(x->dir, each_name, NULL);
}

/* ---- api/net/: resolve, ready, tcp, unix, serve ---- */

static int getaddrinfo_bad(struct fx *x)
{
    (void)x;
    return weft_getaddrinfo("127.0.0.1", "80", NULL, NULL);
}
static int getaddrinfo_ok(struct fx *x)
{
    (void)x;
    struct addrinfo *res = NULL;
    int rc = weft_getaddrinfo("127.0.0.1", "80", NULL, &res);
    if (res)
        freeaddrinfo(res);
    return rc;
}
static int wait_readable_nofd(struct fx *x)
{
    (void)x;
    return weft_wait_readable(-1);
}
static int wait_readable_ok(struct fx *x)
{
    return weft_wait_readable(x->pipe[0]);
}
static int wait_writable_nofd(struct fx *x)
{
    (void)x;
    return weft_wait_writable(-1);
}
static int wait_writable_ok(struct fx *x)
{
    return weft_wait_writable(x->pipe[1]);
}
static int tcp_connect_bad(struct fx *x)
{
    return weft_tcp_connect(NULL, "127.0.0.1",
                            (uint16_t)weft_listener_port(x->l));
}
static int tcp_connect_ok(struct fx *x)
{
    weft_stream *s = NULL;
    int rc =
        weft_tcp_connect(&s, "127.0.0.1", (uint16_t)weft_listener_port(x->l));
    if (s)
        weft_stream_close(s);
    return rc;
}
static int tcp_listen_bad(struct fx *x)
{
    (void)x;
    return weft_tcp_listen(NULL, "127.0.0.1", 0);
}
static int tcp_listen_ok(struct fx *x)
{
    (void)x;
    weft_listener *l = NULL;
    int rc = weft_tcp_listen(&l, "127.0.0.1", 0);
    if (l)
        weft_listener_close(l);
    return rc;
}
static int unix_connect_bad(struct fx *x)
{
    (void)x;
    weft_stream *s;
    return weft_unix_connect(&s, NULL);
}
static int unix_connect_ok(struct fx *x)
{
    weft_stream *s = NULL;
    int rc = weft_unix_connect(&s, x->sock);
    if (rc == 0)
        weft_stream_close(s);
    return rc;
}
static int unix_listen_bad(struct fx *x)
{
    return weft_unix_listen(NULL, x->sock);
}
static int unix_listen_ok(struct fx *x)
{
    weft_listener *l = NULL;
    int rc = weft_unix_listen(&l, x->sock);
    if (rc == 0)
        weft_listener_close(l);
    return rc;
}
static int unix_send_fds_bad(struct fx *x)
{
    (void)x;
    return weft_unix_send_fds(NULL, "x", 1, NULL, 0);
}
static int unix_send_fds_ok(struct fx *x)
{
    return weft_unix_send_fds(x->sa, "x", 1, NULL, 0);
}
static int unix_recv_fds_bad(struct fx *x)
{
    (void)x;
    size_t n;
    return (int)weft_unix_recv_fds(NULL, buf, sizeof buf, NULL, 0, &n);
}
static int unix_recv_fds_ok(struct fx *x)
{
    size_t n;
    return (int)weft_unix_recv_fds(x->sa, buf, sizeof buf, NULL, 0, &n);
}
static int serve_bad(struct fx *x)
{
    (void)x;
    return weft_listener_serve(NULL, handler, NULL);
}
static int serve_ok(struct fx *x)
{
    return weft_listener_serve(x->l, handler, NULL);
}

/* ---- LEAD: api/stream/, api/net/listener.c, api/net/udp.c, api/fs/file.c */

static int stream_recv_bad(struct fx *x)
{
    (void)x;
    return (int)weft_stream_recv(NULL, buf, sizeof buf);
}
static int stream_recv_null_buf(struct fx *x)
{
    return (int)weft_stream_recv(x->sa, NULL, sizeof buf);
}
static int stream_recv_ok(struct fx *x)
{
    return (int)weft_stream_recv(x->sa, buf, sizeof buf);
}
static int stream_send_bad(struct fx *x)
{
    (void)x;
    return (int)weft_stream_send(NULL, "x", 1);
}
static int stream_send_ok(struct fx *x)
{
    return (int)weft_stream_send(x->sa, "x", 1);
}
static int stream_recv_exactly_bad(struct fx *x)
{
    (void)x;
    return (int)weft_stream_recv_exactly(NULL, buf, 4);
}
static int stream_recv_exactly_ok(struct fx *x)
{
    return (int)weft_stream_recv_exactly(x->sa, buf, 4);
}
static int stream_recv_until_bad(struct fx *x)
{
    (void)x;
    return (int)weft_stream_recv_until(NULL, buf, sizeof buf, "\n", 1);
}
static int stream_recv_until_ok(struct fx *x)
{
    return (int)weft_stream_recv_until(x->sa, buf, sizeof buf, "\n", 1);
}
static const struct iovec one_iov = {"x", 1};
static int stream_sendv_bad(struct fx *x)
{
    (void)x;
    return (int)weft_stream_sendv(NULL, &one_iov, 1);
}
static int stream_sendv_null_iov(struct fx *x)
{
    return (int)weft_stream_sendv(x->sa, NULL, 1);
}
static int stream_sendv_ok(struct fx *x)
{
    return (int)weft_stream_sendv(x->sa, &one_iov, 1);
}
static int stream_send_eof_bad(struct fx *x)
{
    (void)x;
    return weft_stream_send_eof(NULL);
}
static int stream_send_eof_ok(struct fx *x)
{
    return weft_stream_send_eof(x->sb);
}
static int accept_bad(struct fx *x)
{
    (void)x;
    weft_stream *s;
    return weft_listener_accept(NULL, &s);
}
static int accept_null_out(struct fx *x)
{
    return weft_listener_accept(x->l, NULL);
}
static int accept_ok(struct fx *x)
{
    weft_stream *s = NULL;
    int rc = weft_listener_accept(x->l, &s);
    if (rc == 0)
        weft_stream_close(s);
    return rc;
}
static int udp_open_bad(struct fx *x)
{
    (void)x;
    return weft_udp_open(NULL, "127.0.0.1", 0);
}
static int udp_open_ok(struct fx *x)
{
    (void)x;
    weft_udp *u = NULL;
    int rc = weft_udp_open(&u, "127.0.0.1", 0);
    if (rc == 0)
        weft_udp_close(u);
    return rc;
}
static int udp_connect_bad(struct fx *x)
{
    (void)x;
    return weft_udp_connect(NULL, "127.0.0.1", 9);
}
static int udp_connect_ok(struct fx *x)
{
    return weft_udp_connect(x->u, "127.0.0.1", 9);
}
static int udp_sendto_bad(struct fx *x)
{
    (void)x;
    return (int)weft_udp_sendto(NULL, "x", 1, NULL, 0);
}
static int udp_sendto_ok(struct fx *x)
{
    return (int)weft_udp_sendto(x->u, "x", 1, NULL, 0);
}
static int udp_recvfrom_bad(struct fx *x)
{
    (void)x;
    return (int)weft_udp_recvfrom(NULL, buf, sizeof buf, NULL, NULL);
}
static int udp_recvfrom_ok(struct fx *x)
{
    return (int)weft_udp_recvfrom(x->u, buf, sizeof buf, NULL, NULL);
}
static int file_open_bad(struct fx *x)
{
    (void)x;
    weft_file *f;
    return weft_file_open(&f, NULL, O_RDONLY, 0);
}
static int file_open_null_out(struct fx *x)
{
    return weft_file_open(NULL, x->file, O_RDONLY, 0);
}
static int file_open_ok(struct fx *x)
{
    weft_file *f = NULL;
    int rc = weft_file_open(&f, x->file, O_RDONLY, 0);
    if (rc == 0)
        weft_file_close(f);
    return rc;
}
static int file_read_bad(struct fx *x)
{
    (void)x;
    return (int)weft_file_read(NULL, buf, sizeof buf);
}
static int file_read_null_buf(struct fx *x)
{
    return (int)weft_file_read(x->f, NULL, sizeof buf);
}
static int file_read_ok(struct fx *x)
{
    return (int)weft_file_read(x->f, buf, sizeof buf);
}
static int file_write_bad(struct fx *x)
{
    (void)x;
    return (int)weft_file_write(NULL, "x", 1);
}
static int file_write_ok(struct fx *x)
{
    return (int)weft_file_write(x->f, "x", 1);
}
static int file_pread_bad(struct fx *x)
{
    (void)x;
    return (int)weft_file_pread(NULL, buf, sizeof buf, 0);
}
static int file_pread_ok(struct fx *x)
{
    return (int)weft_file_pread(x->f, buf, sizeof buf, 0);
}
static int file_pwrite_bad(struct fx *x)
{
    (void)x;
    return (int)weft_file_pwrite(NULL, "x", 1, 0);
}
static int file_pwrite_ok(struct fx *x)
{
    return (int)weft_file_pwrite(x->f, "x", 1, 0);
}
static int file_sync_bad(struct fx *x)
{
    (void)x;
    return weft_file_sync(NULL);
}
static int file_sync_ok(struct fx *x)
{
    return weft_file_sync(x->f);
}
static int file_stat_bad(struct fx *x)
{
    return weft_file_stat(x->f, NULL);
}
static int file_stat_ok(struct fx *x)
{
    struct statx st;
    return weft_file_stat(x->f, &st);
}

/* ---- the table ---- */

/* LEAD: checked by the LEAD tests; URING: weft/uring.h's, which the epoll
 * backend refuses (-ENOTSUP, test_backend.c): left out there. */
enum { LEAD = 1, URING = 2 };

struct row {
    const char *call;
    int (*bad)(struct fx *);    /* a bad argument; NULL: no such form */
    int bad_rc;                 /* what it returns in a task */
    int (*ok)(struct fx *);     /* valid arguments; NULL: no such form */
    int (*closed)(struct fx *); /* a closed handle that stays valid */
    unsigned flags;
};

static const struct row rows[] = {
    /* engine/sync.c, engine/limiter.c, engine/chan.c */
    {"weft_event_wait", event_wait_bad, -EINVAL, event_wait_ok, NULL, 0},
    {"weft_lock_acquire", lock_acquire_bad, -EINVAL, lock_acquire_ok, NULL, 0},
    {"weft_semaphore_acquire", sem_acquire_bad, -EINVAL, sem_acquire_ok, NULL,
     0},
    {"weft_condition_acquire", cond_acquire_bad, -EINVAL, cond_acquire_ok, NULL,
     0},
    {"weft_condition_wait", cond_wait_bad, -EINVAL, cond_wait_ok, NULL, 0},
    {"weft_limiter_acquire", limiter_acquire_bad, -EINVAL, limiter_acquire_ok,
     NULL, 0},
    {"weft_limiter_acquire_on_behalf_of", limiter_behalf_bad, -EINVAL,
     limiter_behalf_ok, NULL, 0},
    {"weft_chan_send", chan_send_bad, -EINVAL, chan_send_ok, chan_send_closed,
     0},
    {"weft_chan_recv", chan_recv_bad, -EINVAL, chan_recv_ok, chan_recv_closed,
     0},
    /* engine/group.c, engine/pool.c, engine/op.c */
    {"weft_group_start", group_start_bad, -EINVAL, group_start_ok, NULL, 0},
    {"weft_to_thread", to_thread_bad, -EINVAL, to_thread_ok, NULL, 0},
    {"weft_uring_await", uring_await_bad, -EINVAL, uring_await_ok, NULL, URING},
    {"weft_uring_await_until", uring_await_until_bad, -EINVAL,
     uring_await_until_ok, NULL, URING},
    /* api/fs/path.c: -EFAULT for a NULL path or buffer, as documented */
    {"weft_path_stat", path_stat_bad, -EFAULT, path_stat_ok, NULL, 0},
    {"weft_path_stat (st NULL)", path_stat_null_st, -EFAULT, NULL, NULL, 0},
    {"weft_path_exists", path_exists_bad, -EFAULT, path_exists_ok, NULL, 0},
    {"weft_path_mkdir", path_mkdir_bad, -EFAULT, path_mkdir_ok, NULL, 0},
    {"weft_path_unlink", path_unlink_bad, -EFAULT, path_unlink_ok, NULL, 0},
    {"weft_path_rmdir", path_rmdir_bad, -EFAULT, path_rmdir_ok, NULL, 0},
    {"weft_path_rename", path_rename_bad, -EFAULT, path_rename_ok, NULL, 0},
    {"weft_path_read_all", path_read_all_bad, -EINVAL, path_read_all_ok, NULL,
     0},
    {"weft_path_read_all (path NULL)", path_read_all_null_path, -EFAULT, NULL,
     NULL, 0},
    {"weft_path_write_all", path_write_all_bad, -EFAULT, path_write_all_ok,
     NULL, 0},
    {"weft_path_list", path_list_bad, -EINVAL, path_list_ok, NULL, 0},
    {"weft_path_list (dir NULL)", path_list_null_dir, -EFAULT, NULL, NULL, 0},
    /* api/net/: resolve.c, ready.c, tcp.c, unix.c, serve.c */
    {"weft_getaddrinfo", getaddrinfo_bad, -EINVAL, getaddrinfo_ok, NULL, 0},
    {"weft_wait_readable", NULL, 0, wait_readable_ok, wait_readable_nofd, 0},
    {"weft_wait_writable", NULL, 0, wait_writable_ok, wait_writable_nofd, 0},
    {"weft_tcp_connect", tcp_connect_bad, -EINVAL, tcp_connect_ok, NULL, 0},
    {"weft_tcp_listen", tcp_listen_bad, -EINVAL, tcp_listen_ok, NULL, 0},
    {"weft_unix_connect", unix_connect_bad, -EINVAL, unix_connect_ok, NULL, 0},
    {"weft_unix_listen", unix_listen_bad, -EINVAL, unix_listen_ok, NULL, 0},
    {"weft_unix_send_fds", unix_send_fds_bad, -EINVAL, unix_send_fds_ok, NULL,
     0},
    {"weft_unix_recv_fds", unix_recv_fds_bad, -EINVAL, unix_recv_fds_ok, NULL,
     0},
    {"weft_listener_serve", serve_bad, -EINVAL, serve_ok, NULL, 0},

    /* LEAD: api/stream/stream.c */
    {"weft_stream_recv", stream_recv_bad, -EINVAL, stream_recv_ok, NULL, LEAD},
    {"weft_stream_recv (buf NULL)", stream_recv_null_buf, -EFAULT, NULL, NULL,
     LEAD},
    {"weft_stream_send", stream_send_bad, -EINVAL, stream_send_ok, NULL, LEAD},
    {"weft_stream_sendv", stream_sendv_bad, -EINVAL, stream_sendv_ok, NULL,
     LEAD},
    {"weft_stream_sendv (iov NULL)", stream_sendv_null_iov, -EFAULT, NULL, NULL,
     LEAD},
    {"weft_stream_recv_exactly", stream_recv_exactly_bad, -EINVAL,
     stream_recv_exactly_ok, NULL, LEAD},
    {"weft_stream_recv_until", stream_recv_until_bad, -EINVAL,
     stream_recv_until_ok, NULL, LEAD},
    {"weft_stream_send_eof", stream_send_eof_bad, -EINVAL, stream_send_eof_ok,
     NULL, LEAD},
    /* LEAD: api/net/listener.c */
    {"weft_listener_accept", accept_bad, -EINVAL, accept_ok, NULL, LEAD},
    {"weft_listener_accept (out NULL)", accept_null_out, -EINVAL, NULL, NULL,
     LEAD},
    /* LEAD: api/net/udp.c */
    {"weft_udp_open", udp_open_bad, -EINVAL, udp_open_ok, NULL, LEAD},
    {"weft_udp_connect", udp_connect_bad, -EINVAL, udp_connect_ok, NULL, LEAD},
    {"weft_udp_sendto", udp_sendto_bad, -EINVAL, udp_sendto_ok, NULL, LEAD},
    {"weft_udp_recvfrom", udp_recvfrom_bad, -EINVAL, udp_recvfrom_ok, NULL,
     LEAD},
    /* LEAD: api/fs/file.c */
    {"weft_file_open", file_open_bad, -EFAULT, file_open_ok, NULL, LEAD},
    {"weft_file_open (out NULL)", file_open_null_out, -EINVAL, NULL, NULL,
     LEAD},
    {"weft_file_read", file_read_bad, -EINVAL, file_read_ok, NULL, LEAD},
    {"weft_file_read (buf NULL)", file_read_null_buf, -EFAULT, NULL, NULL,
     LEAD},
    {"weft_file_write", file_write_bad, -EINVAL, file_write_ok, NULL, LEAD},
    {"weft_file_pread", file_pread_bad, -EINVAL, file_pread_ok, NULL, LEAD},
    {"weft_file_pwrite", file_pwrite_bad, -EINVAL, file_pwrite_ok, NULL, LEAD},
    {"weft_file_sync", file_sync_bad, -EINVAL, file_sync_ok, NULL, LEAD},
    {"weft_file_stat", file_stat_bad, -EFAULT, file_stat_ok, NULL, LEAD},
};
enum { NROWS = sizeof rows / sizeof rows[0] };

/* ---- running the table ---- */

/* A row's bad form, valid form or closed handle: which one a check uses. */
enum form { BAD, OK, CLOSED };

struct check {
    enum form form;
    bool lead; /* the LEAD rows, or the others */
    struct fx fx;
};

static int (*form_of(const struct row *r, enum form form))(struct fx *)
{
    return form == BAD ? r->bad : form == OK ? r->ok : r->closed;
}

static int expected(const struct row *r, enum form form)
{
    return form == BAD ? r->bad_rc : form == OK ? -ECANCELED : -EBADF;
}

static const char *form_name(enum form form)
{
    return form == BAD  ? "a bad argument"
           : form == OK ? "valid arguments"
                        : "a closed handle";
}

static bool fx_open(struct fx *x)
{
    weft_event_init(&x->ev);
    weft_lock_init(&x->lock);
    weft_lock_init(&x->cond_lock);
    weft_semaphore_init(&x->sem, 1, 0);
    weft_condition_init(&x->cond, &x->cond_lock);
    weft_limiter_init(&x->lim, 1);
    if (!CHECK_EQ(weft_chan_open(1, &x->tx, &x->rx), 0))
        return false;
    /* A closed end stays valid while another end of its channel is open. */
    x->tx_closed = weft_chan_tx_clone(x->tx);
    x->rx_closed = weft_chan_rx_clone(x->rx);
    weft_chan_tx_close(x->tx_closed);
    weft_chan_rx_close(x->rx_closed);
    if (!th_pipe(x->pipe))
        return false;
    if (!CHECK_EQ(weft_stream_pair(&x->sa, &x->sb), 0))
        return false;
    if (!CHECK_EQ(weft_tcp_listen(&x->l, "127.0.0.1", 0), 0))
        return false;
    if (!CHECK_EQ(weft_udp_open(&x->u, "127.0.0.1", 0), 0))
        return false;
    return CHECK_EQ(weft_file_open(&x->f, x->file, O_RDWR, 0), 0);
}

static void fx_close(struct fx *x)
{
    if (x->f)
        weft_file_close(x->f);
    if (x->u)
        weft_udp_close(x->u);
    if (x->l)
        weft_listener_close(x->l);
    if (x->sa)
        weft_stream_close(x->sa);
    if (x->sb)
        weft_stream_close(x->sb);
    th_close_pipe(x->pipe);
    weft_chan_tx_close(x->tx);
    weft_chan_rx_close(x->rx);
}

/* Every row of c's kind, called with c's form inside a cancelled scope. */
static int run_rows(void *arg)
{
    struct check *c = arg;
    struct fx *x = &c->fx;
    weft_group_enter(&x->g); /* weft_group_start's group */
    bool epoll = th_on_epoll();
    if (fx_open(x)) {
        for (size_t i = 0; i < NROWS; i++) {
            const struct row *r = &rows[i];
            int (*call)(struct fx *) = form_of(r, c->form);
            if (!call || !!(r->flags & LEAD) != c->lead)
                continue;
            if (epoll && (r->flags & URING))
                continue;
            weft_scope s;
            weft_scope_enter(&s, WEFT_FOREVER);
            weft_scope_cancel(&s);
            int rc = call(x);
            weft_scope_exit(&s, 0);
            if (rc != expected(r, c->form))
                th_fail_at(__FILE__, __LINE__,
                           "%s%s with %s in a cancelled scope: %s, "
                           "expected %d",
                           r->flags & LEAD ? "[LEAD] " : "", r->call,
                           form_name(c->form), th_errname(rc),
                           expected(r, c->form));
        }
    }
    fx_close(x);
    return weft_group_exit(&x->g, 0);
}

static void fx_paths(struct fx *x)
{
    snprintf(x->dir, sizeof x->dir, "/tmp/weft-entry-XXXXXX");
    assert_non_null(mkdtemp(x->dir));
    snprintf(x->file, sizeof x->file, "%s/file", x->dir);
    snprintf(x->sub, sizeof x->sub, "%s/sub", x->dir);
    snprintf(x->sock, sizeof x->sock, "%s/sock", x->dir);
    int fd = open(x->file, O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "hello\n", 6), 6);
    close(fd);
}

static void fx_paths_remove(struct fx *x)
{
    unlink(x->file);
    unlink(x->sock);
    rmdir(x->sub);
    rmdir(x->dir);
}

static void check_rows(enum form form, bool lead)
{
    struct check c = {.form = form, .lead = lead};
    fx_paths(&c.fx);
    int rc = run_loop(run_rows, &c, NULL);
    fx_paths_remove(&c.fx);
    assert_rc(rc, 0);
}

/* Outside any loop the bad form of every row is -EPERM: the thread check
 * comes before the argument check. Not in a task, so cmocka asserts. */
static void check_outside(bool lead)
{
    struct fx x;
    memset(&x, 0, sizeof x);
    x.pipe[0] = x.pipe[1] = -1;
    int failures = 0;
    for (size_t i = 0; i < NROWS; i++) {
        const struct row *r = &rows[i];
        int (*call)(struct fx *) = r->bad ? r->bad : r->closed;
        if (!call || !!(r->flags & LEAD) != lead)
            continue;
        int rc = call(&x);
        if (rc != -EPERM) {
            print_error("%s%s outside a loop: %s, expected -EPERM\n",
                        r->flags & LEAD ? "[LEAD] " : "", r->call,
                        th_errname(rc));
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* ---- the tests: engine and this branch's api/ files ---- */

static void test_entry_outside_a_loop_is_eperm(void **state)
{
    (void)state;
    check_outside(false);
}

static void test_entry_bad_argument_beats_cancellation(void **state)
{
    (void)state;
    check_rows(BAD, false);
}

static void
test_entry_valid_arguments_in_cancelled_scope_are_ecanceled(void **state)
{
    (void)state;
    check_rows(OK, false);
}

static void test_entry_closed_handle_beats_cancellation(void **state)
{
    (void)state;
    check_rows(CLOSED, false);
}

/* ---- LEAD: streams, listeners, UDP, files (the close gate's files) ---- */

static void test_entry_lead_outside_a_loop_is_eperm(void **state)
{
    (void)state;
    check_outside(true);
}

static void test_entry_lead_bad_argument_beats_cancellation(void **state)
{
    (void)state;
    check_rows(BAD, true);
}

static void
test_entry_lead_valid_arguments_in_cancelled_scope_are_ecanceled(void **state)
{
    (void)state;
    check_rows(OK, true);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_entry_outside_a_loop_is_eperm),
    cmocka_unit_test(test_entry_bad_argument_beats_cancellation),
    cmocka_unit_test(
        test_entry_valid_arguments_in_cancelled_scope_are_ecanceled),
    cmocka_unit_test(test_entry_closed_handle_beats_cancellation),
    cmocka_unit_test(test_entry_lead_outside_a_loop_is_eperm),
    cmocka_unit_test(test_entry_lead_bad_argument_beats_cancellation),
    cmocka_unit_test(
        test_entry_lead_valid_arguments_in_cancelled_scope_are_ecanceled),
};

TH_MAIN(tests)
