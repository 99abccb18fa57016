/* SPDX-License-Identifier: MIT */
/*
 * tests/test_file.c - files and paths (API.md "Files"): round trips of
 * many sizes, the position and seek, read_all/write_all, concurrent
 * writers, cancellation of a FIFO read, a deadline on sync, truncate,
 * stat, the path calls, listing, the file stream, the options (fixed
 * files, O_DIRECT), and bad input that must leak no fd.
 *
 * Every test works in a fresh directory under $TMPDIR (or /tmp) that the
 * suite removes at the end. Fd counts come from /proc/self/fd.
 */
#include "helpers.h"

#include <dirent.h>
#include <ftw.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <weft/file.h>
#include <weft/uring.h>

/* White-box: the polled ring's counters (engine/engine.h, struct wf_loop). */
#include "engine/engine.h"

static char tmp_root[256];

/* ---- helpers ---- */

/* dir/name (a few at once: rotating buffers). */
static const char *path_in(const char *dir, const char *name)
{
    static __thread char bufs[8][512];
    static __thread unsigned next;
    char *b = bufs[next++ % 8];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

/* A path in the suite's directory. */
static const char *tp(const char *name)
{
    return path_in(tmp_root, name);
}

/* Deterministic bytes: pattern(i) differs for every seed. */
static void fill(unsigned char *p, size_t n, unsigned seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (unsigned char)x;
    }
}

static int noop_each(const char *name, void *arg)
{
    (void)name;
    (void)arg;
    return 0;
}

/* The worker pool's mailbox (an eventfd) is made on first use: make it
 * before counting fds. */
static void warm_up(void)
{
    CHECK_EQ(weft_path_list(tmp_root, noop_each, NULL), 0);
}

static off_t size_of(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : -1;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int suite_setup(void **state)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmp_root, sizeof tmp_root, "%s/weft-test-file-XXXXXX",
             base && *base ? base : "/tmp");
    return mkdtemp(tmp_root) ? 0 : -1;
}

static int suite_teardown(void **state)
{
    return nftw(tmp_root, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- round trips ---- */

static const size_t trip_sizes[] = {0,        1, 4095, 4096, (1u << 20) + 1,
                                    64u << 20};

static int round_trip_main(void *arg)
{
    for (size_t k = 0; k < sizeof trip_sizes / sizeof trip_sizes[0]; k++) {
        size_t n = trip_sizes[k];
        unsigned char *out = malloc(n + 1), *in = malloc(n + 16);
        if (!CHECK(out && in))
            return -ENOMEM;
        fill(out, n, (unsigned)k + 1);
        weft_file *f;
        if (!CHECK_EQ(weft_file_open(&f, tp("trip"), O_RDWR | O_CREAT | O_TRUNC,
                                     0600),
                      0))
            return -EIO;
        CHECK_EQ(weft_file_write(f, out, n), (ssize_t)n);
        CHECK_EQ(weft_file_seek(f, 0, SEEK_CUR), (off_t)n);
        CHECK_EQ(weft_file_seek(f, 0, SEEK_SET), 0);
        CHECK_EQ(weft_file_read(f, in, n + 16), (ssize_t)n);
        CHECK(memcmp(in, out, n) == 0);
        CHECK_EQ(weft_file_read(f, in, 16), 0); /* end of file */
        CHECK_EQ(weft_file_close(f), 0);
        CHECK_EQ(size_of(tp("trip")), (off_t)n);

        void *all;
        CHECK_EQ(weft_path_read_all(tp("trip"), &all), (ssize_t)n);
        CHECK(all && memcmp(all, out, n) == 0 && ((char *)all)[n] == '\0');
        free(all);
        free(out);
        free(in);
    }
    return 0;
}

static void test_file_round_trip_sizes_0_to_64mib(void **state)
{
    run_in_loop(round_trip_main, NULL);
}

/* ---- position and seek ---- */

static int seek_main(void *arg)
{
    char buf[64] = {0};
    weft_file *f;
    if (!CHECK_EQ(
            weft_file_open(&f, tp("seek"), O_RDWR | O_CREAT | O_TRUNC, 0600),
            0))
        return -EIO;
    CHECK_EQ(weft_file_write(f, "hello world", 11), 11);
    CHECK_EQ(weft_file_seek(f, 0, SEEK_CUR), 11);
    CHECK_EQ(weft_file_seek(f, 6, SEEK_SET), 6);
    CHECK_EQ(weft_file_read(f, buf, 5), 5);
    CHECK(memcmp(buf, "world", 5) == 0);
    CHECK_EQ(weft_file_seek(f, -5, SEEK_CUR), 6);
    CHECK_EQ(weft_file_seek(f, 0, SEEK_END), 11);
    CHECK_EQ(weft_file_seek(f, -11, SEEK_END), 0);
    CHECK_EQ(weft_file_read(f, buf, 5), 5);
    CHECK(memcmp(buf, "hello", 5) == 0);
    CHECK_EQ(weft_file_seek(f, 0, SEEK_CUR), 5);

    /* pread and pwrite use neither the position nor move it */
    CHECK_EQ(weft_file_pread(f, buf, 5, 6), 5);
    CHECK(memcmp(buf, "world", 5) == 0);
    CHECK_EQ(weft_file_pwrite(f, "W", 1, 6), 1);
    CHECK_EQ(weft_file_seek(f, 0, SEEK_CUR), 5);
    CHECK_EQ(weft_file_read(f, buf, 6), 6);
    CHECK(memcmp(buf, " World", 6) == 0);

    /* writing past the end extends the file with a hole of zeros */
    CHECK_EQ(weft_file_seek(f, 20, SEEK_SET), 20);
    CHECK_EQ(weft_file_write(f, "X", 1), 1);
    CHECK_EQ(weft_file_seek(f, 0, SEEK_END), 21);
    CHECK_EQ(weft_file_pread(f, buf, 10, 11), 10);
    for (int i = 0; i < 9; i++)
        CHECK_EQ(buf[i], 0);
    CHECK_EQ(buf[9], 'X');
    CHECK_EQ(weft_file_read(f, buf, 10), 0); /* the position is at 21 */

    /* bad seeks change nothing */
    CHECK_EQ(weft_file_seek(f, -1, SEEK_SET), -EINVAL);
    CHECK_EQ(weft_file_seek(f, -22, SEEK_END), -EINVAL);
    CHECK_EQ(weft_file_seek(f, 0, 12345), -EINVAL);
    CHECK_EQ(weft_file_seek(f, INT64_MAX, SEEK_CUR), -EOVERFLOW);
    CHECK_EQ(weft_file_seek(f, 0, SEEK_CUR), 21);

    /* SEEK_DATA / SEEK_HOLE go to the filesystem */
    off_t d = weft_file_seek(f, 0, SEEK_DATA);
    CHECK(d == 0 || d == -EINVAL || d == -ENXIO);
    CHECK_EQ(weft_file_close(f), 0);
    return 0;
}

static void test_file_position_and_seek_set_cur_end(void **state)
{
    run_in_loop(seek_main, NULL);
}

static int short_read_main(void *arg)
{
    unsigned char out[10000], in[4096];
    fill(out, sizeof out, 7);
    CHECK_EQ(weft_path_write_all(tp("short"), out, sizeof out), 0);
    weft_file *f;
    if (!CHECK_EQ(weft_file_open(&f, tp("short"), O_RDONLY, 0), 0))
        return -EIO;
    CHECK_EQ(weft_file_read(f, in, sizeof in), 4096);
    CHECK_EQ(weft_file_read(f, in, sizeof in), 4096);
    CHECK_EQ(weft_file_read(f, in, sizeof in), 10000 - 8192);
    CHECK(memcmp(in, out + 8192, 10000 - 8192) == 0);
    CHECK_EQ(weft_file_read(f, in, sizeof in), 0);
    CHECK_EQ(weft_file_read(f, in, 0), 0);
    CHECK_EQ(weft_file_close(f), 0);
    return 0;
}

static void test_file_read_is_short_only_at_end(void **state)
{
    run_in_loop(short_read_main, NULL);
}

static int append_main(void *arg)
{
    char buf[16] = {0};
    weft_file *f;
    if (!CHECK_EQ(weft_file_open(&f, tp("append"),
                                 O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600),
                  0))
        return -EIO;
    CHECK_EQ(weft_file_write(f, "abc", 3), 3);
    CHECK_EQ(weft_file_seek(f, 0, SEEK_SET), 0);
    CHECK_EQ(weft_file_write(f, "def", 3), 3); /* still at the end */
    CHECK_EQ(weft_file_seek(f, 0, SEEK_CUR), 6);
    CHECK_EQ(weft_file_close(f), 0);
    CHECK_EQ(weft_path_read_all(tp("append"), (void **)&f), 6);
    CHECK(memcmp(f, "abcdef", 6) == 0);
    free(f);
    (void)buf;
    return 0;
}

static void test_file_append_writes_at_end_and_moves_position(void **state)
{
    run_in_loop(append_main, NULL);
}

/* ---- read_all, write_all ---- */

static int read_all_main(void *arg)
{
    void *data = (void *)1;
    CHECK_EQ(weft_path_write_all(tp("empty"), NULL, 0), 0);
    CHECK_EQ(weft_path_read_all(tp("empty"), &data), 0);
    CHECK(data != NULL && ((char *)data)[0] == '\0');
    free(data);

    CHECK_EQ(weft_path_write_all(tp("small"), "small file", 10), 0);
    CHECK_EQ(weft_path_read_all(tp("small"), &data), 10);
    CHECK_STR_EQ((char *)data, "small file");
    free(data);

    size_t n = 8u << 20;
    unsigned char *big = malloc(n);
    if (!CHECK(big))
        return -ENOMEM;
    fill(big, n, 99);
    CHECK_EQ(weft_path_write_all(tp("large"), big, n), 0);
    CHECK_EQ(weft_path_read_all(tp("large"), &data), (ssize_t)n);
    CHECK(data && memcmp(data, big, n) == 0);
    free(data);
    free(big);

    /* a file whose size stat does not know: read until it ends */
    ssize_t r = weft_path_read_all("/proc/self/status", &data);
    CHECK_GT(r, 0);
    CHECK(data && strstr(data, "Name:") != NULL);
    free(data);

    data = (void *)1;
    CHECK_EQ(weft_path_read_all(tp("missing"), &data), -ENOENT);
    CHECK(data == NULL);
    CHECK_EQ(weft_path_read_all(tp("small"), NULL), -EINVAL);
    return 0;
}

static void test_path_read_all_empty_small_large_and_proc(void **state)
{
    run_in_loop(read_all_main, NULL);
}

static int write_all_main(void *arg)
{
    mode_t um = umask(022);
    umask(um);
    unlink(tp("wa"));
    CHECK_EQ(weft_path_write_all(tp("wa"), "0123456789abcdef", 16), 0);
    CHECK_EQ(size_of(tp("wa")), 16);
    CHECK_EQ(weft_path_write_all(tp("wa"), "xyz", 3), 0); /* truncates */
    CHECK_EQ(size_of(tp("wa")), 3);
    struct statx st;
    CHECK_EQ(weft_path_stat(tp("wa"), &st), 0);
    CHECK_EQ(st.stx_mode & 0777, 0666 & ~um);
    CHECK_EQ(weft_path_write_all(tp("wa"), NULL, 5), -EFAULT);
    CHECK_EQ(weft_path_write_all(tp("no/such/dir"), "x", 1), -ENOENT);
    return 0;
}

static void test_path_write_all_creates_and_truncates(void **state)
{
    run_in_loop(write_all_main, NULL);
}

/* ---- many tasks on one file ---- */

#define WRITERS 8
#define WRITER_SPAN (1u << 20)
#define WRITER_PIECE (64u << 10)

struct writer {
    weft_file *f;
    unsigned idx;
};

static int writer_task(void *arg)
{
    struct writer *w = arg;
    unsigned char *p = malloc(WRITER_SPAN);
    if (!CHECK(p))
        return -ENOMEM;
    fill(p, WRITER_SPAN, 1000 + w->idx);
    off_t base = (off_t)w->idx * WRITER_SPAN;
    for (size_t o = 0; o < WRITER_SPAN; o += WRITER_PIECE)
        if (!CHECK_EQ(
                weft_file_pwrite(w->f, p + o, WRITER_PIECE, base + (off_t)o),
                (ssize_t)WRITER_PIECE))
            break;
    free(p);
    return 0;
}

static int writers_main(void *arg)
{
    weft_file *f;
    struct writer w[WRITERS];
    if (!CHECK_EQ(weft_file_open(&f, tp("writers"),
                                 O_WRONLY | O_CREAT | O_TRUNC, 0600),
                  0))
        return -EIO;
    weft_group g;
    weft_group_enter(&g);
    for (unsigned i = 0; i < WRITERS; i++) {
        w[i] = (struct writer){f, i};
        CHECK_EQ(weft_group_spawn(&g, writer_task, &w[i]), 0);
    }
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_file_close(f), 0);

    unsigned char *data, *want = malloc(WRITER_SPAN);
    CHECK_EQ(weft_path_read_all(tp("writers"), (void **)&data),
             (ssize_t)WRITERS * WRITER_SPAN);
    for (unsigned i = 0; i < WRITERS && data && want; i++) {
        fill(want, WRITER_SPAN, 1000 + i);
        CHECK(memcmp(data + (size_t)i * WRITER_SPAN, want, WRITER_SPAN) == 0);
    }
    free(data);
    free(want);
    return 0;
}

static void test_file_eight_writers_at_disjoint_offsets(void **state)
{
    run_in_loop(writers_main, NULL);
}

/* ---- cancellation ---- */

static int fifo_main(void *arg)
{
    char buf[64] = {0};
    unlink(tp("fifo"));
    if (!CHECK_EQ(mkfifo(tp("fifo"), 0600), 0))
        return -EIO;
    weft_file *f;
    /* O_NONBLOCK: an open for reading does not wait for a writer. */
    if (!CHECK_EQ(weft_file_open(&f, tp("fifo"), O_RDONLY | O_NONBLOCK, 0), 0))
        return -EIO;
    /* A writer that writes nothing yet (with no writer at all a FIFO
     * read is at its end at once: 0). */
    int wfd = open(tp("fifo"), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    CHECK_GE(wfd, 0);

    weft_scope s;
    weft_move_on_after(&s, 50 * WEFT_MSEC);
    ssize_t r = weft_file_read(f, buf, sizeof buf);
    CHECK_EQ(r, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, (int)r), 0);
    CHECK(weft_scope_cancelled_caught(&s));

    /* The cancelled read took nothing: a later write is all read. */
    CHECK_EQ(write(wfd, "after the cancel", 16), 16);
    CHECK_EQ(weft_file_read(f, buf, sizeof buf), 16);
    CHECK(memcmp(buf, "after the cancel", 16) == 0);
    /* A FIFO has no position to seek. */
    CHECK_EQ(weft_file_seek(f, 0, SEEK_SET), -ESPIPE);
    close(wfd);
    CHECK_EQ(weft_file_read(f, buf, sizeof buf), 0); /* writer gone */
    CHECK_EQ(weft_file_close(f), 0);
    return 0;
}

static void
test_file_fifo_read_cancelled_then_later_write_all_read(void **state)
{
    run_in_loop(fifo_main, NULL);
}

static int sync_deadline_main(void *arg)
{
    size_t n = 16u << 20;
    unsigned char *p = malloc(n);
    if (!CHECK(p))
        return -ENOMEM;
    fill(p, n, 5);
    weft_file *f;
    if (!CHECK_EQ(
            weft_file_open(&f, tp("dirty"), O_WRONLY | O_CREAT | O_TRUNC, 0600),
            0))
        return -EIO;
    CHECK_EQ(weft_file_write(f, p, n), (ssize_t)n);
    /* Disk I/O under way may not be interruptible: the sync either
     * completes (0) or is cancelled before it starts (-ETIMEDOUT). */
    weft_scope s;
    weft_fail_after(&s, 1 * WEFT_MSEC);
    int rc = weft_scope_exit(&s, weft_file_sync(f));
    CHECK(rc == 0 || rc == -ETIMEDOUT);
    /* Already expired: cancelled at the first checkpoint, nothing runs. */
    weft_fail_after(&s, -1);
    CHECK_EQ(weft_scope_exit(&s, weft_file_datasync(f)), -ETIMEDOUT);
    CHECK_EQ(weft_file_datasync(f), 0);
    CHECK_EQ(weft_file_sync(f), 0);
    CHECK_EQ(weft_file_close(f), 0);
    free(p);
    return 0;
}

static void test_file_sync_under_deadline_completes_or_times_out(void **state)
{
    run_in_loop(sync_deadline_main, NULL);
}

struct open_race {
    weft_scope *s;
};

static int canceller(void *arg)
{
    weft_scope_cancel(arg);
    return 0;
}

/* An open whose scope is cancelled once it is in the kernel: it either
 * returns -ECANCELED (the fd, if the kernel made one, closed) or, never
 * here, a file; either way no fd is left behind. */
static int open_cancel_main(void *arg)
{
    warm_up();
    CHECK_EQ(weft_path_write_all(tp("oc"), "x", 1), 0);
    int before = th_fd_count();
    int cancelled = 0;
    for (int i = 0; i < 200; i++) {
        weft_group g;
        weft_scope s;
        weft_group_enter(&g);
        weft_scope_enter(&s, WEFT_FOREVER);
        CHECK_EQ(weft_group_spawn(&g, canceller, &s), 0);
        weft_file *f = NULL;
        /* half plain opens (done at submit), half O_CREAT (io-wq) */
        int flags = i & 1 ? O_RDWR | O_CREAT : O_RDONLY;
        int rc = weft_file_open(&f, tp("oc"), flags, 0600);
        CHECK(rc == 0 || rc == -ECANCELED);
        if (rc == -ECANCELED)
            cancelled++;
        if (rc == 0)
            CHECK(weft_file_close(f) == 0 || true);
        weft_scope_exit(&s, rc);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
    }
    CHECK_GT(cancelled, 0);
    CHECK_EQ(th_fd_count(), before);
    return 0;
}

static void test_file_open_cancelled_in_flight_leaks_no_fd(void **state)
{
    run_in_loop(open_cancel_main, NULL);
}

static int cancelled_calls_main(void *arg)
{
    warm_up();
    char buf[8];
    weft_file *f;
    int before = th_fd_count();
    if (!CHECK_EQ(weft_file_open(&f, tp("cc"), O_RDWR | O_CREAT, 0600), 0))
        return -EIO;
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    weft_file *g = (weft_file *)1;
    CHECK_EQ(weft_file_open(&g, tp("cc"), O_RDONLY, 0), -ECANCELED);
    CHECK(g == NULL);
    CHECK_EQ(weft_file_read(f, buf, sizeof buf), -ECANCELED);
    CHECK_EQ(weft_file_write(f, "x", 1), -ECANCELED);
    CHECK_EQ(weft_file_pread(f, buf, 1, 0), -ECANCELED);
    CHECK_EQ(weft_file_seek(f, 0, SEEK_END), -ECANCELED);
    CHECK_EQ(weft_file_sync(f), -ECANCELED);
    CHECK_EQ(weft_file_truncate(f, 0), -ECANCELED);
    CHECK_EQ(weft_path_exists(tp("cc")), -ECANCELED);
    CHECK_EQ(weft_path_list(tmp_root, noop_each, NULL), -ECANCELED);
    void *data = NULL;
    CHECK_EQ(weft_path_read_all(tp("cc"), &data), -ECANCELED);
    /* close is a checkpoint too, but closes all the same */
    CHECK_EQ(weft_file_close(f), -ECANCELED);
    weft_scope_exit(&s, -ECANCELED);
    CHECK_EQ(th_fd_count(), before);
    return 0;
}

static void
test_file_calls_in_cancelled_scope_and_close_still_closes(void **state)
{
    run_in_loop(cancelled_calls_main, NULL);
}

/* ---- close while another task uses the file ---- */

struct closing {
    weft_file *f;
    weft_event go;
    ssize_t reader_rc, late_rc;
};

static int blocked_reader(void *arg)
{
    struct closing *c = arg;
    char buf[16];
    c->reader_rc = weft_file_read(c->f, buf, sizeof buf);
    return 0;
}

static int late_user(void *arg)
{
    struct closing *c = arg;
    char buf[16];
    weft_event_wait(&c->go);
    c->late_rc = weft_file_pread(c->f, buf, sizeof buf, 0);
    return 0;
}

static int close_busy_main(void *arg)
{
    warm_up();
    unlink(tp("fifo2"));
    if (!CHECK_EQ(mkfifo(tp("fifo2"), 0600), 0))
        return -EIO;
    int before = th_fd_count();
    struct closing c = {.reader_rc = 1, .late_rc = 1};
    weft_event_init(&c.go);
    if (!CHECK_EQ(weft_file_open(&c.f, tp("fifo2"), O_RDONLY | O_NONBLOCK, 0),
                  0))
        return -EIO;
    int wfd = open(tp("fifo2"), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, blocked_reader, &c), 0);
    CHECK_EQ(weft_group_spawn(&g, late_user, &c), 0);
    th_settle(); /* the reader is in the kernel */
    /* late_user runs once close has begun and waits for the reader */
    weft_event_set(&c.go);
    CHECK_EQ(weft_file_close(c.f), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(c.reader_rc, -EBADF);
    CHECK_EQ(c.late_rc, -EBADF);
    close(wfd);
    CHECK_EQ(th_fd_count(), before);
    return 0;
}

static void test_file_close_ends_other_tasks_calls_with_ebadf(void **state)
{
    run_in_loop(close_busy_main, NULL);
}

/* ---- truncate, stat ---- */

static int truncate_main(void *arg)
{
    unsigned char p[10000];
    fill(p, sizeof p, 3);
    weft_file *f;
    if (!CHECK_EQ(
            weft_file_open(&f, tp("trunc"), O_RDWR | O_CREAT | O_TRUNC, 0600),
            0))
        return -EIO;
    CHECK_EQ(weft_file_write(f, p, sizeof p), (ssize_t)sizeof p);
    CHECK_EQ(weft_file_truncate(f, 100), 0);
    struct statx st;
    CHECK_EQ(weft_file_stat(f, &st), 0);
    CHECK_EQ(st.stx_size, 100);
    CHECK_EQ(weft_file_seek(f, 0, SEEK_CUR), (off_t)sizeof p); /* unmoved */
    CHECK_EQ(weft_file_truncate(f, 1 << 20), 0);               /* extends */
    CHECK_EQ(size_of(tp("trunc")), 1 << 20);
    unsigned char q[200];
    CHECK_EQ(weft_file_pread(f, q, sizeof q, 0), (ssize_t)sizeof q);
    CHECK(memcmp(q, p, 100) == 0);
    for (int i = 100; i < 200; i++)
        CHECK_EQ(q[i], 0);
    CHECK_EQ(weft_file_truncate(f, -1), -EINVAL);
    CHECK_EQ(weft_file_truncate(f, 0), 0);
    CHECK_EQ(size_of(tp("trunc")), 0);
    print_message("truncate: %s\n", weft_uring_has_op(55)
                                        ? "IORING_OP_FTRUNCATE"
                                        : "the worker pool (no opcode)");
    CHECK_EQ(weft_file_close(f), 0);
    return 0;
}

static void test_file_truncate_shrinks_and_extends(void **state)
{
    run_in_loop(truncate_main, NULL);
}

static int stat_main(void *arg)
{
    struct statx st;
    weft_file *f;
    if (!CHECK_EQ(
            weft_file_open(&f, tp("st"), O_RDWR | O_CREAT | O_TRUNC, 0640), 0))
        return -EIO;
    CHECK_EQ(weft_file_write(f, "12345", 5), 5);
    memset(&st, 0, sizeof st);
    CHECK_EQ(weft_file_stat(f, &st), 0);
    CHECK_EQ(st.stx_size, 5);
    CHECK(S_ISREG(st.stx_mode));
    CHECK_EQ(weft_file_stat(f, NULL), -EFAULT);
    CHECK_EQ(weft_file_close(f), 0);

    CHECK_EQ(weft_path_stat(tp("st"), &st), 0);
    CHECK_EQ(st.stx_size, 5);
    CHECK_EQ(weft_path_stat(tmp_root, &st), 0);
    CHECK(S_ISDIR(st.stx_mode));
    unlink(tp("link"));
    CHECK_EQ(symlink("st", tp("link")), 0);
    CHECK_EQ(weft_path_lstat(tp("link"), &st), 0);
    CHECK(S_ISLNK(st.stx_mode));
    CHECK_EQ(weft_path_stat(tp("link"), &st), 0);
    CHECK(S_ISREG(st.stx_mode));
    CHECK_EQ(weft_path_stat(tp("nothing"), &st), -ENOENT);
    CHECK_EQ(weft_path_stat(NULL, &st), -EFAULT);
    CHECK_EQ(weft_path_stat(tp("st"), NULL), -EFAULT);
    return 0;
}

static void test_file_and_path_stat(void **state)
{
    run_in_loop(stat_main, NULL);
}

/* ---- paths ---- */

static int paths_main(void *arg)
{
    CHECK_EQ(weft_path_mkdir(tp("d"), 0755), 0);
    CHECK_EQ(weft_path_exists(tp("d")), 1);
    CHECK_EQ(weft_path_mkdir(tp("d"), 0755), -EEXIST);
    CHECK_EQ(weft_path_write_all(tp("d/f"), "x", 1), 0);
    CHECK_EQ(weft_path_rmdir(tp("d")), -ENOTEMPTY);
    CHECK_EQ(weft_path_exists(tp("d/f/g")), 0); /* ENOTDIR */
    CHECK_EQ(weft_path_rename(tp("d"), tp("e")), 0);
    CHECK_EQ(weft_path_exists(tp("d")), 0);
    CHECK_EQ(weft_path_exists(tp("e/f")), 1);
    CHECK_EQ(weft_path_rename(tp("e/f"), tp("e/g")), 0);
    CHECK_EQ(weft_path_unlink(tp("e/f")), -ENOENT);
    CHECK_EQ(weft_path_unlink(tp("e")), -EISDIR);
    CHECK_EQ(weft_path_unlink(tp("e/g")), 0);
    CHECK_EQ(weft_path_rmdir(tp("e")), 0);
    CHECK_EQ(weft_path_exists(tp("e")), 0);
    CHECK_EQ(weft_path_rmdir(tp("e")), -ENOENT);
    CHECK_EQ(weft_path_rename(tp("e"), tp("f")), -ENOENT);
    CHECK_EQ(weft_path_mkdir(tp("no/such"), 0755), -ENOENT);
    CHECK_EQ(weft_path_mkdir(NULL, 0755), -EFAULT);
    CHECK_EQ(weft_path_rename(tp("x"), NULL), -EFAULT);
    CHECK_EQ(weft_path_exists(NULL), -EFAULT);
    return 0;
}

static void test_path_mkdir_rmdir_unlink_rename_exists(void **state)
{
    run_in_loop(paths_main, NULL);
}

struct names {
    char seen[128];
    int count, stop_at;
};

static int collect(const char *name, void *arg)
{
    struct names *n = arg;
    int i;
    if (strcmp(name, "sub") == 0)
        i = 100;
    else if (sscanf(name, "n%d", &i) != 1 || i < 0 || i >= 100)
        return th_fail_at(__FILE__, __LINE__, "odd name %s", name), -EIO;
    CHECK_EQ(n->seen[i], 0);
    n->seen[i] = 1;
    n->count++;
    return n->count == n->stop_at ? 42 : 0;
}

struct scanned {
    int files, dirs, bytes_ok;
};

static int on_scan(const char *name, const struct statx *st, void *arg)
{
    struct scanned *sc = arg;
    if (S_ISDIR(st->stx_mode)) {
        sc->dirs++;
        CHECK_STR_EQ(name, "sub");
    } else if (S_ISREG(st->stx_mode)) {
        sc->files++;
        /* each file holds its own name, "list/nI" */
        sc->bytes_ok += st->stx_size == 5 + strlen(name);
    }
    return 0;
}

static int list_main(void *arg)
{
    CHECK_EQ(weft_path_mkdir(tp("list"), 0755), 0);
    for (int i = 0; i < 100; i++) {
        char name[32];
        snprintf(name, sizeof name, "list/n%d", i);
        CHECK_EQ(weft_path_write_all(tp(name), name, strlen(name)), 0);
    }
    CHECK_EQ(weft_path_mkdir(tp("list/sub"), 0755), 0);
    struct names n = {.stop_at = -1};
    CHECK_EQ(weft_path_list(tp("list"), collect, &n), 0);
    CHECK_EQ(n.count, 101); /* no . and .. */
    for (int i = 0; i <= 100; i++)
        CHECK_EQ(n.seen[i], 1);
    n = (struct names){.stop_at = 10};
    CHECK_EQ(weft_path_list(tp("list"), collect, &n), 42);
    CHECK_EQ(n.count, 10);
    n = (struct names){.stop_at = -1};
    CHECK_EQ(weft_path_list(tp("list/sub"), collect, &n), 0);
    CHECK_EQ(n.count, 0);
    CHECK_EQ(weft_path_list(tp("list/none"), collect, &n), -ENOENT);
    CHECK_EQ(weft_path_list(tp("list/n1"), collect, &n), -ENOTDIR);
    CHECK_EQ(weft_path_list(tp("list"), NULL, &n), -EINVAL);

    /* the same with each entry's lstat */
    struct scanned sc = {0};
    CHECK_EQ(weft_path_scan(tp("list"), on_scan, &sc), 0);
    CHECK_EQ(sc.files, 100);
    CHECK_EQ(sc.dirs, 1);
    CHECK_EQ(sc.bytes_ok, 100);
    CHECK_EQ(weft_path_scan(tp("list/none"), on_scan, &sc), -ENOENT);
    CHECK_EQ(weft_path_scan(tp("list"), NULL, &sc), -EINVAL);
    return 0;
}

static void test_path_list_and_scan_name_every_entry_and_stop(void **state)
{
    run_in_loop(list_main, NULL);
}

/* ---- bad input leaks no fd ---- */

static int bad_input_main(void *arg)
{
    warm_up();
    char buf[16];
    weft_file *f = (weft_file *)1;
    CHECK_EQ(weft_path_write_all(tp("bad"), "0123456789", 10), 0);
    CHECK_EQ(weft_path_mkdir(tp("bad_dir"), 0755), 0);
    int before = th_fd_count();

    CHECK_EQ(weft_file_open(&f, tp("missing"), O_RDONLY, 0), -ENOENT);
    CHECK(f == NULL);
    CHECK_EQ(weft_file_open(&f, tp("bad_dir"), O_WRONLY, 0), -EISDIR);
    CHECK_EQ(weft_file_open(&f, tp("bad_dir"), O_RDWR, 0), -EISDIR);
    CHECK_EQ(weft_file_open(&f, tp("bad"), O_RDWR | O_CREAT | O_EXCL, 0600),
             -EEXIST);
    CHECK_EQ(weft_file_open(&f, NULL, O_RDONLY, 0), -EFAULT);
    CHECK_EQ(weft_file_open(NULL, tp("bad"), O_RDONLY, 0), -EINVAL);
    weft_file_options bad_opts = {.flags = 0x100};
    CHECK_EQ(weft_file_open_opts(&f, tp("bad"), O_RDONLY, 0, &bad_opts),
             -EINVAL);

    if (!CHECK_EQ(weft_file_open(&f, tp("bad"), O_RDONLY, 0), 0))
        return -EIO;
    CHECK_EQ(weft_file_read(f, NULL, 10), -EFAULT);
    CHECK_EQ(weft_file_pread(f, NULL, 10, 0), -EFAULT);
    CHECK_EQ(weft_file_pread(f, buf, 10, -1), -EINVAL);
    CHECK_EQ(weft_file_write(f, "x", 1), -EBADF); /* opened read-only */
    CHECK_EQ(weft_file_pwrite(f, NULL, 1, 0), -EFAULT);
    CHECK_EQ(weft_file_read(NULL, buf, 1), -EINVAL);
    CHECK_EQ(weft_file_seek(NULL, 0, SEEK_SET), -EINVAL);
    CHECK_EQ(weft_file_close(NULL), -EINVAL);
    CHECK_EQ(weft_file_stream(NULL) == NULL, 1);
    CHECK_EQ(weft_file_read(f, buf, sizeof buf), 10); /* f still works */
    CHECK_EQ(weft_file_close(f), 0);

    void *data = (void *)1;
    CHECK_EQ(weft_path_read_all(tp("bad_dir"), &data), -EISDIR);
    CHECK(data == NULL);
    CHECK_EQ(weft_path_write_all(tp("bad_dir"), "x", 1), -EISDIR);
    CHECK_EQ(weft_path_read_all(NULL, &data), -EFAULT);

    /* an unaligned O_DIRECT buffer is refused before it is submitted */
    weft_file_options direct = {.flags = WEFT_FILE_DIRECT};
    int rc = weft_file_open_opts(&f, tp("bad"), O_RDONLY, 0, &direct);
    if (rc == -EINVAL) {
        print_message("O_DIRECT: not supported under %s; skipped\n", tmp_root);
    } else if (CHECK_EQ(rc, 0)) {
        size_t mem, off;
        CHECK_EQ(weft_file_alignment(f, &mem, &off), 0);
        char *raw = malloc(3 * 4096);
        char *aligned = raw + (4096 - (uintptr_t)raw % 4096);
        if (mem > 1)
            CHECK_EQ(weft_file_pread(f, aligned + 1, off, 0), -EINVAL);
        if (off > 1) {
            CHECK_EQ(weft_file_pread(f, aligned, off + 1, 0), -EINVAL);
            CHECK_EQ(weft_file_pread(f, aligned, off, 1), -EINVAL);
        }
        CHECK_EQ(weft_file_pread(f, aligned, 4096, 0), 10); /* short: end */
        free(raw);
        CHECK_EQ(weft_file_close(f), 0);
    }
    CHECK_EQ(th_fd_count(), before);
    return 0;
}

static void test_file_bad_input_gets_errno_and_leaks_no_fd(void **state)
{
    run_in_loop(bad_input_main, NULL);
}

static weft_file *leftover;

static int open_only_main(void *arg)
{
    return weft_file_open(&leftover, tp("outside"), O_RDWR | O_CREAT, 0600);
}

static void test_file_outside_a_task(void **state)
{
    weft_file *f = (weft_file *)1;
    assert_rc(weft_file_open(&f, tp("outside"), O_RDONLY, 0), -EPERM);
    assert_rc(weft_path_exists(tp("outside")), -EPERM);
    int before = th_fd_count();
    run_in_loop_opts(open_only_main, NULL, NULL, 0);
    char buf[4];
    assert_rc(weft_file_read(leftover, buf, 4), -EPERM);
    /* A file that outlived its loop can still be closed. */
    assert_rc(weft_file_close(leftover), 0);
    assert_int_equal(th_fd_count(), before);
}

/* ---- options ---- */

static int options_main(void *arg)
{
    warm_up();
    int before = th_fd_count();
    size_t n = (1u << 20) + 512;
    unsigned char *out = malloc(n), *in = malloc(n);
    if (!CHECK(out && in))
        return -ENOMEM;
    fill(out, n, 11);

    /* a fixed (registered) file: the same calls, the same results */
    weft_file_options fixed = {.flags = WEFT_FILE_FIXED};
    weft_file *f;
    if (CHECK_EQ(weft_file_open_opts(&f, tp("fixed"),
                                     O_RDWR | O_CREAT | O_TRUNC, 0600, &fixed),
                 0)) {
        CHECK_EQ(weft_file_write(f, out, n), (ssize_t)n);
        CHECK_EQ(weft_file_pread(f, in, n, 0), (ssize_t)n);
        CHECK(memcmp(in, out, n) == 0);
        CHECK_EQ(weft_file_sync(f), 0);
        CHECK_EQ(weft_file_truncate(f, 10), 0);
        CHECK_EQ(weft_file_seek(f, 0, SEEK_END), 10);
        CHECK_GE(weft_file_fd(f), 0);
        CHECK_EQ(weft_file_close(f), 0);
    }
    /* many fixed files open at once, each in its own slot */
    weft_file *many[32];
    for (int i = 0; i < 32; i++)
        CHECK_EQ(
            weft_file_open_opts(&many[i], tp("fixed"), O_RDONLY, 0, &fixed), 0);
    for (int i = 0; i < 32; i++) {
        CHECK_EQ(weft_file_pread(many[i], in, 10, 0), 10);
        CHECK_EQ(weft_file_close(many[i]), 0);
    }

    /* O_DIRECT with aligned buffers */
    weft_file_options direct = {.flags = WEFT_FILE_DIRECT};
    int rc = weft_file_open_opts(&f, tp("direct"), O_RDWR | O_CREAT | O_TRUNC,
                                 0600, &direct);
    if (rc == -EINVAL) {
        print_message("O_DIRECT: not supported under %s; skipped\n", tmp_root);
    } else if (CHECK_EQ(rc, 0)) {
        size_t mem = 0, off = 0;
        CHECK_EQ(weft_file_alignment(f, &mem, &off), 0);
        CHECK_GE(mem, 1);
        CHECK_GE(off, 1);
        void *a = NULL, *b = NULL;
        size_t len = 64 * 1024;
        CHECK_EQ(posix_memalign(&a, 4096, len), 0);
        CHECK_EQ(posix_memalign(&b, 4096, len), 0);
        fill(a, len, 12);
        CHECK_EQ(weft_file_write(f, a, len), (ssize_t)len);
        CHECK_EQ(weft_file_pread(f, b, len, 0), (ssize_t)len);
        CHECK(memcmp(a, b, len) == 0);
        CHECK_EQ(weft_file_write(f, (char *)a + 1, off), -EINVAL);
        CHECK_EQ(weft_file_seek(f, 0, SEEK_CUR), (off_t)len); /* unmoved */
        free(a);
        free(b);
        CHECK_EQ(weft_file_close(f), 0);
    }
    free(out);
    free(in);
    CHECK_EQ(th_fd_count(), before);
    return 0;
}

static void test_file_options_fixed_and_direct(void **state)
{
    run_in_loop(options_main, NULL);
}

/* ---- registered (fixed) buffers ---- */

/* Another loop's set is not this loop's. */
static int fixed_fresh_loop_main(void *arg)
{
    weft_file *f;
    if (!CHECK_EQ(weft_file_open(&f, tp("fx"), O_RDONLY, 0), 0))
        return -EIO;
    CHECK_EQ(weft_file_pread_fixed(f, arg, 16, 0), -EINVAL);
    CHECK_EQ(weft_file_unregister_buffers(), -ENXIO);
    CHECK_EQ(weft_file_close(f), 0);
    return 0;
}

static int fixed_buffers_main(void *arg)
{
    (void)arg;
    warm_up();
    int before = th_fd_count();
    size_t len = 256 * 1024;
    unsigned char *a = NULL, *b = NULL, *other = NULL;
    if (!CHECK_EQ(posix_memalign((void **)&a, 4096, len), 0) ||
        !CHECK_EQ(posix_memalign((void **)&b, 4096, len), 0) ||
        !CHECK_EQ(posix_memalign((void **)&other, 4096, 4096), 0))
        return -ENOMEM;
    weft_file *f;
    if (!CHECK_EQ(
            weft_file_open(&f, tp("fx"), O_RDWR | O_CREAT | O_TRUNC, 0600), 0))
        return -EIO;
    char c;
    /* no set yet: every fixed call is -EINVAL, nothing is submitted */
    CHECK_EQ(weft_file_pread_fixed(f, a, 16, 0), -EINVAL);
    CHECK_EQ(weft_file_unregister_buffers(), -ENXIO);

    /* bad sets */
    struct iovec iov[2] = {{a, len}, {b, len}};
    struct iovec empty[1] = {{a, 0}};
    struct iovec null[1] = {{NULL, 16}};
    CHECK_EQ(weft_file_register_buffers(NULL, 1), -EINVAL);
    CHECK_EQ(weft_file_register_buffers(iov, 0), -EINVAL);
    CHECK_EQ(weft_file_register_buffers(iov, 100000), -EINVAL);
    CHECK_EQ(weft_file_register_buffers(empty, 1), -EINVAL);
    CHECK_EQ(weft_file_register_buffers(null, 1), -EINVAL);

    int rc = weft_file_register_buffers(iov, 2);
    if (rc == -ENOMEM) { /* RLIMIT_MEMLOCK on an old kernel */
        print_message("registered buffers: -ENOMEM; skipped\n");
        goto out;
    }
    if (!CHECK_EQ(rc, 0))
        goto out;
    CHECK_EQ(weft_file_register_buffers(iov, 2), -EBUSY);

    /* round trips of several sizes, at offsets inside the buffers */
    fill(a, len, 21);
    CHECK_EQ(weft_file_pwrite_fixed(f, a, len, 0), (ssize_t)len);
    CHECK_EQ(weft_file_pread_fixed(f, b, len, 0), (ssize_t)len);
    CHECK(memcmp(a, b, len) == 0);
    memset(b, 0, len);
    CHECK_EQ(weft_file_pread_fixed(f, b + 100, 1000, 5000), 1000);
    CHECK(memcmp(b + 100, a + 5000, 1000) == 0);
    CHECK_EQ(weft_file_pwrite_fixed(f, a + 7, 1, len), 1);
    CHECK_EQ(weft_file_pread_fixed(f, b, len, len - 10), 11); /* short: end */
    CHECK(b[10] == a[7]);
    CHECK_EQ(weft_file_pread_fixed(f, b, 16, 10 * (off_t)len), 0);
    /* the last byte of a buffer is in it; one past is not */
    CHECK_EQ(weft_file_pread_fixed(f, b + len - 1, 1, 0), 1);
    CHECK(b[len - 1] == a[0]);
    CHECK_EQ(weft_file_pread_fixed(f, b + len - 1, 2, 0), -EINVAL);
    CHECK_EQ(weft_file_pread_fixed(f, b - 1, 2, 0), -EINVAL);
    /* a buffer not of the set */
    CHECK_EQ(weft_file_pread_fixed(f, other, 16, 0), -EINVAL);
    CHECK_EQ(weft_file_pwrite_fixed(f, other, 16, 0), -EINVAL);
    CHECK_EQ(weft_file_pread_fixed(f, &c, 1, 0), -EINVAL);
    /* bad arguments */
    CHECK_EQ(weft_file_pread_fixed(NULL, a, 16, 0), -EINVAL);
    CHECK_EQ(weft_file_pread_fixed(f, NULL, 16, 0), -EFAULT);
    CHECK_EQ(weft_file_pwrite_fixed(f, NULL, 16, 0), -EFAULT);
    CHECK_EQ(weft_file_pread_fixed(f, a, 16, -1), -EINVAL);

    /* cancelled before it starts */
    weft_scope s;
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_file_pread_fixed(f, a, 16, 0), -ECANCELED);
    CHECK_EQ(weft_file_pwrite_fixed(f, a, 16, 0), -ECANCELED);
    weft_scope_exit(&s, -ECANCELED);

    /* cancelled while in the kernel: a READ_FIXED on a FIFO */
    unlink(tp("fxfifo"));
    if (CHECK_EQ(mkfifo(tp("fxfifo"), 0600), 0)) {
        weft_file *p;
        CHECK_EQ(weft_file_open(&p, tp("fxfifo"), O_RDONLY | O_NONBLOCK, 0), 0);
        int wfd = open(tp("fxfifo"), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        CHECK_GE(wfd, 0);
        weft_move_on_after(&s, 30 * WEFT_MSEC);
        ssize_t r = weft_file_pread_fixed(p, b, 64, 0);
        CHECK_EQ(r, -ECANCELED);
        CHECK_EQ(weft_scope_exit(&s, (int)r), 0);
        CHECK_EQ(write(wfd, "fixed", 5), 5);
        CHECK_EQ(weft_file_pread_fixed(p, b, 64, 0), 5);
        CHECK(memcmp(b, "fixed", 5) == 0);
        close(wfd);
        CHECK_EQ(weft_file_close(p), 0);
    }

    /* O_DIRECT: aligned reads and writes; unaligned ones -EINVAL */
    weft_file_options direct = {.flags = WEFT_FILE_DIRECT};
    weft_file *d;
    rc = weft_file_open_opts(&d, tp("fxdirect"), O_RDWR | O_CREAT | O_TRUNC,
                             0600, &direct);
    if (rc == -EINVAL) {
        print_message("O_DIRECT: not supported under %s; skipped\n", tmp_root);
    } else if (CHECK_EQ(rc, 0)) {
        size_t mem = 0, off = 0;
        CHECK_EQ(weft_file_alignment(d, &mem, &off), 0);
        fill(a, len, 22);
        CHECK_EQ(weft_file_pwrite_fixed(d, a, len, 0), (ssize_t)len);
        memset(b, 0, len);
        for (size_t at = 0; at < len; at += 4096)
            CHECK_EQ(weft_file_pread_fixed(d, b + at, 4096, (off_t)at), 4096);
        CHECK(memcmp(a, b, len) == 0);
        if (mem > 1)
            CHECK_EQ(weft_file_pread_fixed(d, b + 1, 4096, 0), -EINVAL);
        if (off > 1) {
            CHECK_EQ(weft_file_pread_fixed(d, b, 4096, 1), -EINVAL);
            CHECK_EQ(weft_file_pread_fixed(d, b, off + 1, 0), -EINVAL);
            CHECK_EQ(weft_file_pwrite_fixed(d, a, 100, 0), -EINVAL);
        }
        CHECK_EQ(weft_file_close(d), 0);
    }

    CHECK_EQ(weft_file_unregister_buffers(), 0);
    CHECK_EQ(weft_file_pread_fixed(f, a, 16, 0), -EINVAL);
    CHECK_EQ(weft_file_unregister_buffers(), -ENXIO);
    /* a new set after the old one; left for the loop's end to drop */
    CHECK_EQ(weft_file_register_buffers(iov + 1, 1), 0);
    CHECK_EQ(weft_file_pread_fixed(f, b, 16, 0), 16);
    CHECK_EQ(weft_file_pread_fixed(f, a, 16, 0), -EINVAL);
out:
    CHECK_EQ(weft_file_close(f), 0);
    free(a);
    free(b);
    free(other);
    CHECK_EQ(th_fd_count(), before);
    return 0;
}

static void test_file_fixed_buffers_round_trip_bad_args_and_cancel(void **state)
{
    (void)state;
    struct iovec iov = {&iov, sizeof iov};
    char buf[8];
    /* outside a task */
    CHECK_EQ(weft_file_register_buffers(&iov, 1), -EPERM);
    CHECK_EQ(weft_file_unregister_buffers(), -EPERM);
    CHECK_EQ(weft_file_pread_fixed(NULL, buf, 1, 0), -EPERM);
    run_in_loop(fixed_buffers_main, NULL);
    run_in_loop(fixed_fresh_loop_main, buf);
}

/* ---- ring options: SQPOLL, IOPOLL ---- */

/* arg NULL: the loop asked for SQPOLL. */
static int sqpoll_main(void *arg)
{
    /* the file calls and a sleep work as on any ring */
    if (!arg)
        CHECK(weft_uring_setup_flags() & IORING_SETUP_SQPOLL);
    size_t n = 64 * 1024;
    unsigned char *out = malloc(n), *in = malloc(n);
    if (!CHECK(out && in))
        return -ENOMEM;
    fill(out, n, 31);
    weft_file *f;
    if (CHECK_EQ(
            weft_file_open(&f, tp("sqpoll"), O_RDWR | O_CREAT | O_TRUNC, 0600),
            0)) {
        for (int i = 0; i < 20; i++) {
            CHECK_EQ(weft_file_pwrite(f, out, n, 0), (ssize_t)n);
            CHECK_EQ(weft_file_pread(f, in, n, 0), (ssize_t)n);
        }
        CHECK(memcmp(in, out, n) == 0);
        CHECK_EQ(weft_sleep(5 * WEFT_MSEC), 0);
        CHECK_EQ(weft_file_close(f), 0);
    }
    free(out);
    free(in);
    return 0;
}

static void test_file_ring_options_sqpoll_and_iopoll(void **state)
{
    (void)state;
    th_uring_only("SQPOLL is io_uring's ring option");
    weft_options o = {.flags = WEFT_OPT_SQPOLL, .sq_thread_idle = 20};
    run_in_loop_opts(sqpoll_main, NULL, &o, 0);
    /* SQPOLL refuses the task-run flags: a forced DEFER mode fails, with
     * the reason */
    o.ring_mode = WEFT_RING_DEFER;
    CHECK_EQ(weft_run(sqpoll_main, NULL, &o), -EINVAL);
    CHECK(strstr(weft_strerror(-EINVAL), "SQPOLL") != NULL);
    /* sq_thread_idle without SQPOLL */
    weft_options idle = {.sq_thread_idle = 5};
    CHECK_EQ(weft_run(sqpoll_main, NULL, &idle), -EINVAL);
    /* IOPOLL: a second, polled ring; the loop's own ring is as before,
     * so everything a loop does still works (the tests below) */
    weft_options io = {.flags = WEFT_OPT_IOPOLL};
    run_in_loop_opts(sqpoll_main, "no SQPOLL", &io, 0);
    io.flags |= WEFT_OPT_SQPOLL;
    run_in_loop_opts(sqpoll_main, NULL, &io, 0);
}

/* ---- WEFT_OPT_IOPOLL: O_DIRECT files on the polled ring ---- */

/* Under /var/tmp (a disk, where O_DIRECT works; /tmp may be tmpfs). */
static char var_dir[64];

static const char *vp(const char *name)
{
    return path_in(var_dir, name);
}

struct poll_count {
    uint64_t polled, refused;
};

static struct poll_count poll_count(void)
{
    return (struct poll_count){wf_cur->npolled, wf_cur->npoll_refused};
}

/* What the polled ring did since c: every operation of a file is either
 * answered there, or refused once (no polled queues) and then the file's
 * operations go to the main ring. */
static void poll_since(struct poll_count c, uint64_t *polled, uint64_t *refused)
{
    *polled = wf_cur->npolled - c.polled;
    *refused = wf_cur->npoll_refused - c.refused;
}

/* Write then read back n bytes at 4 offsets, positioned and not. */
static void direct_round_trip(weft_file *f, unsigned char *out,
                              unsigned char *in, size_t n, unsigned seed)
{
    for (int i = 0; i < 4; i++) {
        fill(out, n, seed + (unsigned)i);
        CHECK_EQ(weft_file_pwrite(f, out, n, (off_t)(i * n)), (ssize_t)n);
        memset(in, 0, n);
        CHECK_EQ(weft_file_pread(f, in, n, (off_t)(i * n)), (ssize_t)n);
        CHECK(memcmp(in, out, n) == 0);
    }
    CHECK_EQ(weft_file_seek(f, 0, SEEK_SET), 0);
    CHECK_EQ(weft_file_write(f, out, n), (ssize_t)n);
    CHECK_EQ(weft_file_seek(f, 0, SEEK_SET), 0);
    memset(in, 0, n);
    CHECK_EQ(weft_file_read(f, in, n), (ssize_t)n);
    CHECK(memcmp(in, out, n) == 0);
}

static int iopoll_main(void *arg)
{
    (void)arg;
    bool uring = !th_on_epoll();
    /* On io_uring a second ring, IOPOLL; the main ring is unchanged. On
     * epoll the option is ignored, as SQPOLL is. */
    CHECK_EQ(wf_cur->poll != NULL, uring);
    if (uring) {
        CHECK(wf_cur->poll->setup_flags & IORING_SETUP_IOPOLL);
        CHECK(!(weft_uring_setup_flags() & IORING_SETUP_IOPOLL));
    }
    size_t n = 64 * 1024;
    unsigned char *out = NULL, *in = NULL;
    if (!CHECK_EQ(posix_memalign((void **)&out, 4096, n), 0) ||
        !CHECK_EQ(posix_memalign((void **)&in, 4096, n), 0)) {
        free(out);
        return -ENOMEM;
    }
    weft_file_options direct = {.flags = WEFT_FILE_DIRECT};
    weft_file *f;
    int rc = weft_file_open_opts(&f, vp("direct"), O_RDWR | O_CREAT | O_TRUNC,
                                 0600, &direct);
    if (rc == -EINVAL) {
        print_message("O_DIRECT: not supported under %s; skipped\n", var_dir);
        free(out);
        free(in);
        return 0;
    }
    uint64_t polled, refused;
    struct poll_count c = poll_count();
    if (CHECK_EQ(rc, 0)) {
        direct_round_trip(f, out, in, n, 1);
        poll_since(c, &polled, &refused);
        print_message("      polled ring: %llu answered, %llu refused "
                      "(then the main ring)\n",
                      (unsigned long long)polled, (unsigned long long)refused);
        CHECK(refused <= 1);
        /* 10 reads and writes: all answered there, or at most one
         * refused and from then on the main ring's (writes that extend
         * the file, waited for inside the kernel, may be answered on the
         * polled ring by a device that has no polled queues) */
        if (uring)
            CHECK(refused == 1 ? polled < 10 : polled == 10);
        else
            CHECK(polled == 0 && refused == 0);
        CHECK_EQ(weft_file_close(f), 0);
    }
    /* Registered buffers: on both rings under the same indices. */
    struct iovec iov[2] = {{out, n}, {in, n}};
    c = poll_count();
    if (CHECK_EQ(weft_file_register_buffers(iov, 2), 0) &&
        CHECK_EQ(weft_file_open_opts(&f, vp("fixed"),
                                     O_RDWR | O_CREAT | O_TRUNC, 0600, &direct),
                 0)) {
        fill(out, n, 7);
        CHECK_EQ(weft_file_pwrite_fixed(f, out, n, 4096), (ssize_t)n);
        memset(in, 0, n);
        CHECK_EQ(weft_file_pread_fixed(f, in, n, 4096), (ssize_t)n);
        CHECK(memcmp(in, out, n) == 0);
        poll_since(c, &polled, &refused);
        if (uring)
            CHECK(refused == 1 ? polled < 2 : polled == 2);
        CHECK_EQ(weft_file_close(f), 0);
        CHECK_EQ(weft_file_unregister_buffers(), 0);
    }
    /* A buffered file never goes near the polled ring. */
    c = poll_count();
    if (CHECK_EQ(weft_file_open(&f, vp("buffered"), O_RDWR | O_CREAT | O_TRUNC,
                                0600),
                 0)) {
        direct_round_trip(f, out, in, 1000, 3);
        poll_since(c, &polled, &refused);
        CHECK(polled == 0 && refused == 0);
        CHECK_EQ(weft_file_close(f), 0);
    }
    free(out);
    free(in);
    return 0;
}

/*
 * Cancellation and deadlines as without the option: a read cancelled
 * before it starts runs nothing; one cancelled in flight either returns
 * its bytes (a disk read under way finishes; the next checkpoint reports
 * the cancellation) or -ECANCELED; a deadline ends a loop of reads with
 * -ETIMEDOUT. Each round opens the file anew, so that its first read is
 * on the polled ring (refused there on a device without polled queues,
 * while cancelled, and then reissued: the reissue sees the cancellation).
 */
static int iopoll_cancel_main(void *arg)
{
    (void)arg;
    size_t n = 256 * 1024;
    unsigned char *buf = NULL;
    if (!CHECK_EQ(posix_memalign((void **)&buf, 4096, n), 0))
        return -ENOMEM;
    fill(buf, n, 9);
    weft_file_options direct = {.flags = WEFT_FILE_DIRECT};
    weft_file *f;
    int rc = weft_file_open_opts(&f, vp("cancel"), O_RDWR | O_CREAT | O_TRUNC,
                                 0600, &direct);
    if (rc == -EINVAL) {
        free(buf);
        return 0; /* no O_DIRECT there: iopoll_main said so */
    }
    if (!CHECK_EQ(rc, 0)) {
        free(buf);
        return rc;
    }
    CHECK_EQ(weft_file_pwrite(f, buf, n, 0), (ssize_t)n);
    CHECK_EQ(weft_file_close(f), 0);
    int before = th_fd_count();
    int done = 0, cancelled = 0;
    struct poll_count c = poll_count();
    for (int i = 0; i < 40; i++) {
        if (!CHECK_EQ(
                weft_file_open_opts(&f, vp("cancel"), O_RDONLY, 0, &direct), 0))
            break;
        weft_scope s;
        weft_scope_enter(&s, WEFT_FOREVER);
        if (i == 0) {
            /* cancelled before it starts */
            weft_scope_cancel(&s);
            CHECK_EQ(weft_file_pread(f, buf, n, 0), -ECANCELED);
        } else {
            weft_group g;
            weft_group_enter(&g);
            CHECK_EQ(weft_group_spawn(&g, canceller, &s), 0);
            ssize_t r = weft_file_pread(f, buf, n, 0);
            CHECK(r == (ssize_t)n || r == -ECANCELED);
            if (r == (ssize_t)n) {
                done++;
                CHECK_EQ(weft_checkpoint(), -ECANCELED);
            } else {
                cancelled++;
            }
            CHECK_EQ(weft_group_exit(&g, 0), 0);
        }
        /* the scope catches its own cancellation */
        CHECK_EQ(weft_scope_exit(&s, -ECANCELED), 0);
        CHECK_EQ(weft_file_close(f), 0);
    }
    CHECK_EQ(done + cancelled, 39);
    uint64_t polled, refused;
    poll_since(c, &polled, &refused);
    print_message("      cancelled in flight: %d read, %d cancelled; polled "
                  "ring: %llu answered, %llu refused\n",
                  done, cancelled, (unsigned long long)polled,
                  (unsigned long long)refused);
    /* each cancelled-in-flight read was on the polled ring first */
    if (!th_on_epoll())
        CHECK_EQ(polled + refused, 39);
    /* A deadline: reads until it passes */
    if (CHECK_EQ(weft_file_open_opts(&f, vp("cancel"), O_RDONLY, 0, &direct),
                 0)) {
        weft_scope s;
        weft_fail_after(&s, 20 * WEFT_MSEC);
        ssize_t r;
        unsigned reads = 0;
        while ((r = weft_file_pread(f, buf, n, 0)) == (ssize_t)n)
            reads++;
        CHECK_EQ(r, -ECANCELED);
        CHECK_EQ(weft_scope_exit(&s, (int)r), -ETIMEDOUT);
        CHECK_GT(reads, 0);
        /* already expired: nothing runs */
        weft_fail_after(&s, -1);
        CHECK_EQ(weft_scope_exit(&s, (int)weft_file_pread(f, buf, n, 0)),
                 -ETIMEDOUT);
        CHECK_EQ(weft_file_pread(f, buf, n, 0), (ssize_t)n);
        CHECK_EQ(weft_file_close(f), 0);
    }
    CHECK_EQ(th_fd_count(), before);
    free(buf);
    return 0;
}

static void
test_file_iopoll_direct_falls_back_cancels_and_ends_clean(void **state)
{
    (void)state;
    snprintf(var_dir, sizeof var_dir, "/var/tmp/weft-iopoll-XXXXXX");
    if (!mkdtemp(var_dir)) {
        print_message("      no directory under /var/tmp; skipped\n");
        skip();
    }
    int before = th_fd_count();
    weft_options o = {.flags = WEFT_OPT_IOPOLL};
    run_in_loop_opts(iopoll_main, NULL, &o, 0);
    run_in_loop_opts(iopoll_cancel_main, NULL, &o, 0);
    /* the polled ring went with its loop */
    assert_int_equal(th_fd_count(), before);
    const char *names[] = {"direct", "fixed", "buffered", "cancel"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        unlink(vp(names[i]));
    assert_int_equal(rmdir(var_dir), 0);
}

/*
 * The polled path itself, on a device with polled queues: none here (the
 * virtio disk has none), so it runs in a VM on null_blk (docs/internals.md,
 * scripts/vm-run; the command is in docs/performance.md, issue 16):
 *
 *   scripts/vm-run --modules null_blk --modopt null_blk.queue_mode=2 \
 *       --modopt null_blk.poll_queues=2 --modopt null_blk.memory_backed=1 \
 *       --modopt null_blk.gb=1 -- build/tests/test_file '*iopoll_device*'
 *
 * WEFT_IOPOLL_DEV names another device (default /dev/nullb0); skipped
 * where it is absent or has no polled queues.
 */
static const char *iopoll_dev(void)
{
    const char *d = getenv("WEFT_IOPOLL_DEV");
    return d && *d ? d : "/dev/nullb0";
}

/* Whether dev's queue says it polls, and whether it keeps data. */
static bool dev_polls(const char *dev, bool *keeps)
{
    char path[256], v[8] = "";
    snprintf(path, sizeof path, "/sys/block/%s/queue/io_poll",
             strrchr(dev, '/') ? strrchr(dev, '/') + 1 : dev);
    FILE *fp = fopen(path, "re");
    if (!fp)
        return false;
    bool polls = fgets(v, sizeof v, fp) && v[0] == '1';
    fclose(fp);
    *keeps = true;
    fp = fopen("/sys/module/null_blk/parameters/memory_backed", "re");
    if (fp && strstr(dev, "nullb")) {
        *keeps = fgets(v, sizeof v, fp) && (v[0] == 'Y' || v[0] == '1');
    }
    if (fp)
        fclose(fp);
    return polls;
}

struct dev_reader {
    weft_file *f;
    unsigned char *buf;
    size_t n;
    unsigned reads;
    ssize_t last;
};

/* Reads until cancelled: each read is whole or -ECANCELED. */
static int dev_reader(void *arg)
{
    struct dev_reader *r = arg;
    for (;;) {
        r->last = weft_file_pread(r->f, r->buf, r->n,
                                  (off_t)((r->reads % 64) * r->n));
        if (r->last != (ssize_t)r->n)
            return 0;
        r->reads++;
    }
}

static int sleeper(void *arg)
{
    int *naps = arg;
    for (int i = 0; i < 20; i++)
        if (weft_sleep(WEFT_MSEC) == 0)
            (*naps)++;
    return 0;
}

static int iopoll_device_main(void *arg)
{
    bool keeps = *(bool *)arg;
    if (!CHECK(wf_cur->poll != NULL))
        return -EIO;
    unsigned fl = wf_cur->poll->setup_flags;
    print_message("      polled ring: IOPOLL%s%s\n",
                  fl & IORING_SETUP_SINGLE_ISSUER ? " | SINGLE_ISSUER" : "",
                  fl & IORING_SETUP_DEFER_TASKRUN ? " | DEFER_TASKRUN" : "");
    enum { N = 4096, NT = 8 };
    unsigned char *out = NULL, *in = NULL;
    if (!CHECK_EQ(posix_memalign((void **)&out, 4096, NT * N), 0) ||
        !CHECK_EQ(posix_memalign((void **)&in, 4096, NT * N), 0)) {
        free(out);
        return -ENOMEM;
    }
    weft_file_options direct = {.flags = WEFT_FILE_DIRECT};
    weft_file *f;
    if (!CHECK_EQ(weft_file_open_opts(&f, iopoll_dev(), O_RDWR, 0, &direct),
                  0)) {
        free(out);
        free(in);
        return -EIO;
    }
    /* Writes and reads, plain and positioned: all answered on the polled
     * ring, none refused. */
    struct poll_count c = poll_count();
    for (int i = 0; i < 16; i++) {
        fill(out, N, 100 + (unsigned)i);
        CHECK_EQ(weft_file_pwrite(f, out, N, (off_t)i * N), (ssize_t)N);
        memset(in, 0, N);
        CHECK_EQ(weft_file_pread(f, in, N, (off_t)i * N), (ssize_t)N);
        if (keeps)
            CHECK(memcmp(in, out, N) == 0);
    }
    uint64_t polled, refused;
    poll_since(c, &polled, &refused);
    print_message("      %s: %llu answered on the polled ring, %llu "
                  "refused%s\n",
                  iopoll_dev(), (unsigned long long)polled,
                  (unsigned long long)refused,
                  keeps ? "; data compared" : "; lengths only");
    CHECK_EQ(polled, 32);
    CHECK_EQ(refused, 0);
    /* Registered buffers, on the polled ring too */
    struct iovec iov[2] = {{out, NT * N}, {in, NT * N}};
    c = poll_count();
    if (CHECK_EQ(weft_file_register_buffers(iov, 2), 0)) {
        fill(out, NT * N, 200);
        CHECK_EQ(weft_file_pwrite_fixed(f, out, NT * N, 0), (ssize_t)(NT * N));
        memset(in, 0, NT * N);
        CHECK_EQ(weft_file_pread_fixed(f, in, NT * N, 0), (ssize_t)(NT * N));
        if (keeps)
            CHECK(memcmp(in, out, NT * N) == 0);
        CHECK_EQ(weft_file_unregister_buffers(), 0);
    }
    poll_since(c, &polled, &refused);
    CHECK_EQ(polled, 2);
    CHECK_EQ(refused, 0);
    /* NT readers polling while a sleeper's timers (main ring) fire; then
     * their scope is cancelled: each ends whole or -ECANCELED */
    struct dev_reader r[NT];
    int naps = 0;
    weft_scope s;
    weft_group g;
    c = poll_count();
    weft_scope_enter(&s, WEFT_FOREVER);
    weft_group_enter(&g);
    for (int i = 0; i < NT; i++) {
        r[i] = (struct dev_reader){.f = f, .buf = in + i * N, .n = N};
        CHECK_EQ(weft_group_spawn(&g, dev_reader, &r[i]), 0);
    }
    CHECK_EQ(weft_group_spawn(&g, sleeper, &naps), 0);
    CHECK_EQ(weft_sleep(30 * WEFT_MSEC), 0);
    weft_scope_cancel(&s);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(weft_scope_exit(&s, 0), 0);
    unsigned reads = 0;
    for (int i = 0; i < NT; i++) {
        CHECK_EQ(r[i].last, -ECANCELED);
        reads += r[i].reads;
    }
    poll_since(c, &polled, &refused);
    print_message("      %d readers for 30 ms, then cancelled: %u reads; "
                  "polled ring: %llu answered; %d 1 ms sleeps meanwhile\n",
                  NT, reads, (unsigned long long)polled, naps);
    CHECK_GT(reads, 0);
    CHECK_EQ(refused, 0);
    CHECK(polled >= reads);
    CHECK_GT(naps, 0);
    /* a deadline on reads: it ends them */
    weft_fail_after(&s, 10 * WEFT_MSEC);
    ssize_t rr;
    while ((rr = weft_file_pread(f, in, N, 0)) == (ssize_t)N)
        ;
    CHECK_EQ(rr, -ECANCELED);
    CHECK_EQ(weft_scope_exit(&s, (int)rr), -ETIMEDOUT);
    /* nothing left in flight on either ring's count */
    CHECK_EQ(wf_cur->poll->inflight, 0);
    CHECK_EQ(weft_file_close(f), 0);
    free(out);
    free(in);
    return 0;
}

static void test_file_iopoll_device_polls_round_trips_and_cancels(void **state)
{
    (void)state;
    bool keeps = false;
    if (th_on_epoll() || !dev_polls(iopoll_dev(), &keeps)) {
        print_message("      no polled device (%s with io_poll 1; run it in "
                      "scripts/vm-run with null_blk); skipped\n",
                      iopoll_dev());
        skip();
    }
    int before = th_fd_count();
    weft_options o = {.flags = WEFT_OPT_IOPOLL};
    run_in_loop_opts(iopoll_device_main, &keeps, &o, 0);
    assert_int_equal(th_fd_count(), before);
}

/* ---- file streams ---- */

struct drain {
    weft_stream *s;
    unsigned char *got;
    size_t len, cap;
};

static int drain_task(void *arg)
{
    struct drain *d = arg;
    for (;;) {
        ssize_t r = weft_stream_recv(d->s, d->got + d->len, d->cap - d->len);
        if (r <= 0) {
            /* Failed (under WEFT_FAULTS): the sender must not wait for
             * room that this end will never make. */
            if (!CHECK_EQ(r, 0))
                shutdown(weft_stream_fd(d->s), SHUT_RDWR);
            return 0;
        }
        d->len += (size_t)r;
    }
}

static int stream_main(void *arg)
{
    warm_up();
    int before = th_fd_count();
    /* lines through a file stream */
    const char text[] = "one\ntwo\nthree\n";
    CHECK_EQ(weft_path_write_all(tp("lines"), text, sizeof text - 1), 0);
    weft_file *f;
    if (!CHECK_EQ(weft_file_open(&f, tp("lines"), O_RDONLY, 0), 0))
        return -EIO;
    weft_stream *s = weft_file_stream(f);
    if (!CHECK(s != NULL))
        return -ENOMEM;
    char line[16] = {0};
    CHECK_EQ(weft_stream_recv_until(s, line, sizeof line, "\n", 1), 3);
    CHECK(memcmp(line, "one", 3) == 0);
    CHECK_EQ(weft_stream_recv_exactly(s, line, 4), 4);
    CHECK(memcmp(line, "two\n", 4) == 0);
    CHECK_EQ(weft_stream_recv(s, line, 2), 2); /* small: read-ahead */
    CHECK(memcmp(line, "th", 2) == 0);
    CHECK_EQ(weft_stream_recv(s, line, sizeof line), 4);
    CHECK_EQ(weft_stream_recv(s, line, sizeof line), 0);
    CHECK_EQ(weft_stream_recv_until(s, line, sizeof line, "\n", 1), -ENODATA);
    CHECK_EQ(weft_stream_send_eof(s), -ENOTSUP);
    CHECK_GE(weft_stream_fd(s), 0);
    CHECK_EQ(weft_stream_close(s), 0);

    /* send writes all at the position */
    if (!CHECK_EQ(
            weft_file_open(&f, tp("sent"), O_WRONLY | O_CREAT | O_TRUNC, 0600),
            0))
        return -EIO;
    s = weft_file_stream(f);
    CHECK_EQ(weft_stream_send(s, "abc", 3), 3);
    CHECK_EQ(weft_stream_send(s, "def", 3), 3);
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(size_of(tp("sent")), 6);

    /* a file copied into a socket with the same calls */
    size_t n = (3u << 20) + 17;
    unsigned char *out = malloc(n);
    struct drain d = {.got = malloc(n + 1), .cap = n + 1};
    if (!CHECK(out && d.got))
        return -ENOMEM;
    fill(out, n, 21);
    CHECK_EQ(weft_path_write_all(tp("copy"), out, n), 0);
    weft_stream *a, *b;
    CHECK_EQ(weft_stream_pair(&a, &b), 0);
    d.s = b;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, drain_task, &d), 0);
    CHECK_EQ(weft_file_open(&f, tp("copy"), O_RDONLY, 0), 0);
    s = weft_file_stream(f);
    char *chunk = malloc(128 << 10);
    for (;;) {
        ssize_t r = weft_stream_recv(s, chunk, 128 << 10);
        if (r <= 0) {
            CHECK_EQ(r, 0);
            break;
        }
        if (!CHECK_EQ(weft_stream_send(a, chunk, (size_t)r), r))
            break;
    }
    CHECK_EQ(weft_stream_send_eof(a), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(d.len, n);
    CHECK(memcmp(d.got, out, n) == 0);
    CHECK_EQ(weft_stream_close(s), 0);
    CHECK_EQ(weft_stream_close(a), 0);
    CHECK_EQ(weft_stream_close(b), 0);
    free(chunk);
    free(out);
    free(d.got);
    CHECK_EQ(th_fd_count(), before);
    return 0;
}

static void test_file_stream_recv_send_and_copy_to_socket(void **state)
{
    run_in_loop(stream_main, NULL);
}

struct blocked_recv {
    weft_stream *s;
    ssize_t rc;
};

static int blocked_recv_task(void *arg)
{
    struct blocked_recv *b = arg;
    char buf[16];
    b->rc = weft_stream_recv(b->s, buf, sizeof buf);
    return 0;
}

static int stream_close_main(void *arg)
{
    warm_up();
    unlink(tp("fifo3"));
    if (!CHECK_EQ(mkfifo(tp("fifo3"), 0600), 0))
        return -EIO;
    int before = th_fd_count();
    weft_file *f;
    if (!CHECK_EQ(weft_file_open(&f, tp("fifo3"), O_RDONLY | O_NONBLOCK, 0), 0))
        return -EIO;
    int wfd = open(tp("fifo3"), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
    struct blocked_recv b = {.s = weft_file_stream(f), .rc = 1};
    /* a recv returns what the FIFO has, without waiting for more */
    char buf[100];
    CHECK_EQ(write(wfd, "abc", 3), 3);
    CHECK_EQ(weft_stream_recv(b.s, buf, sizeof buf), 3);
    CHECK_EQ(write(wfd, "defg", 4), 4);
    char *big = malloc(128 << 10); /* past the read-ahead: read directly */
    CHECK_EQ(weft_stream_recv(b.s, big, 128 << 10), 4);
    CHECK(memcmp(big, "defg", 4) == 0);
    free(big);
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, blocked_recv_task, &b), 0);
    th_settle(); /* the recv is in the kernel */
    CHECK_EQ(weft_stream_close(b.s), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK_EQ(b.rc, -EBADF);
    close(wfd);
    CHECK_EQ(th_fd_count(), before);
    return 0;
}

static void test_file_stream_of_fifo_recv_some_and_close_ends_recv(void **state)
{
    run_in_loop(stream_close_main, NULL);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_file_round_trip_sizes_0_to_64mib),
    cmocka_unit_test(test_file_position_and_seek_set_cur_end),
    cmocka_unit_test(test_file_read_is_short_only_at_end),
    cmocka_unit_test(test_file_append_writes_at_end_and_moves_position),
    cmocka_unit_test(test_path_read_all_empty_small_large_and_proc),
    cmocka_unit_test(test_path_write_all_creates_and_truncates),
    cmocka_unit_test(test_file_eight_writers_at_disjoint_offsets),
    cmocka_unit_test(test_file_fifo_read_cancelled_then_later_write_all_read),
    cmocka_unit_test(test_file_sync_under_deadline_completes_or_times_out),
    cmocka_unit_test(test_file_open_cancelled_in_flight_leaks_no_fd),
    cmocka_unit_test(test_file_calls_in_cancelled_scope_and_close_still_closes),
    cmocka_unit_test(test_file_close_ends_other_tasks_calls_with_ebadf),
    cmocka_unit_test(test_file_truncate_shrinks_and_extends),
    cmocka_unit_test(test_file_and_path_stat),
    cmocka_unit_test(test_path_mkdir_rmdir_unlink_rename_exists),
    cmocka_unit_test(test_path_list_and_scan_name_every_entry_and_stop),
    cmocka_unit_test(test_file_bad_input_gets_errno_and_leaks_no_fd),
    cmocka_unit_test(test_file_outside_a_task),
    cmocka_unit_test(test_file_options_fixed_and_direct),
    cmocka_unit_test(test_file_fixed_buffers_round_trip_bad_args_and_cancel),
    cmocka_unit_test(test_file_ring_options_sqpoll_and_iopoll),
    cmocka_unit_test(test_file_iopoll_direct_falls_back_cancels_and_ends_clean),
    cmocka_unit_test(test_file_iopoll_device_polls_round_trips_and_cancels),
    cmocka_unit_test(test_file_stream_recv_send_and_copy_to_socket),
    cmocka_unit_test(test_file_stream_of_fifo_recv_some_and_close_ends_recv),
};

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    return cmocka_run_group_tests(tests, suite_setup, suite_teardown);
}
