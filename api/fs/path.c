/* SPDX-License-Identifier: MIT */
/*
 * api/fs/path.c - paths on io_uring (anyio's Path): stat, exists, mkdir,
 * unlink, rmdir, rename (STATX, MKDIRAT, UNLINKAT, RENAMEAT), whole-file
 * read_all/write_all over weft_file, and directory listing (with or
 * without each entry's lstat) on the worker pool (io_uring has no
 * getdents opcode).
 *
 * All paths are relative to the working directory, as open(2)'s are. A
 * path must stay valid for the call (the kernel reads it while the task
 * waits; it is the caller's memory).
 */
#include "api/fs/fs_impl.h"

#include <dirent.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft/thread.h>
#include <weft/uring.h>

/*
 * The entry check every path call starts with, in wf_entry's order;
 * `bad` is the argument error, 0 if none: -EFAULT for a NULL path or
 * buffer (as the kernel says for a bad pointer), -EINVAL for the rest.
 */
static int path_entry(int bad)
{
    struct weft_task *t;
    return wf_entry_err(&t, bad, false, true);
}

/* ---- the same call on the worker pool, for kernels without the opcode ---- */

struct sys_job {
    int op; /* an IORING_OP_* */
    const char *a, *b;
    int flags;
    mode_t mode;
};

static int sys_worker(void *arg)
{
    struct sys_job *j = arg;
    int rc;
    switch (j->op) {
    case IORING_OP_MKDIRAT:
        rc = mkdir(j->a, j->mode);
        break;
    case IORING_OP_UNLINKAT:
        rc = unlinkat(AT_FDCWD, j->a, j->flags);
        break;
    default:
        rc = rename(j->a, j->b);
        break;
    }
    return rc < 0 ? -errno : 0;
}

static int path_op(struct sys_job *j, const char *what)
{
    bool to_ok = j->op != IORING_OP_RENAMEAT || j->b;
    int rc = path_entry(j->a && to_ok ? 0 : -EFAULT);
    if (rc < 0)
        return rc;
    if (!wf_has_op(j->op))
        return weft_to_thread(sys_worker, j, NULL, 0);
    struct io_uring_sqe *sqe = wf_sqe();
    switch (j->op) {
    case IORING_OP_MKDIRAT:
        io_uring_prep_mkdirat(sqe, AT_FDCWD, j->a, j->mode);
        break;
    case IORING_OP_UNLINKAT:
        io_uring_prep_unlinkat(sqe, AT_FDCWD, j->a, j->flags);
        break;
    default:
        io_uring_prep_renameat(sqe, AT_FDCWD, j->a, AT_FDCWD, j->b, 0);
        break;
    }
    return wf_await(sqe, what);
}

WF_EXPORT int weft_path_mkdir(const char *path, mode_t mode)
{
    struct sys_job j = {.op = IORING_OP_MKDIRAT, .a = path, .mode = mode};
    return path_op(&j, "weft_path_mkdir");
}

WF_EXPORT int weft_path_unlink(const char *path)
{
    struct sys_job j = {.op = IORING_OP_UNLINKAT, .a = path};
    return path_op(&j, "weft_path_unlink");
}

WF_EXPORT int weft_path_rmdir(const char *path)
{
    struct sys_job j = {
        .op = IORING_OP_UNLINKAT, .a = path, .flags = AT_REMOVEDIR};
    return path_op(&j, "weft_path_rmdir");
}

WF_EXPORT int weft_path_rename(const char *from, const char *to)
{
    struct sys_job j = {.op = IORING_OP_RENAMEAT, .a = from, .b = to};
    return path_op(&j, "weft_path_rename");
}

/* ---- stat, exists ---- */

static int stat_path(const char *path, int flags, unsigned mask,
                     struct statx *st, const char *what)
{
    int rc = path_entry(path && st ? 0 : -EFAULT);
    if (rc < 0)
        return rc;
    struct io_uring_sqe *sqe = wf_sqe();
    io_uring_prep_statx(sqe, AT_FDCWD, path, flags, mask, st);
    return wf_await(sqe, what);
}

WF_EXPORT int weft_path_stat(const char *path, struct statx *st)
{
    return stat_path(path, 0, STATX_BASIC_STATS | STATX_BTIME, st,
                     "weft_path_stat");
}

WF_EXPORT int weft_path_lstat(const char *path, struct statx *st)
{
    return stat_path(path, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS | STATX_BTIME,
                     st, "weft_path_lstat");
}

WF_EXPORT int weft_path_exists(const char *path)
{
    struct statx st;
    int rc = stat_path(path, 0, STATX_TYPE, &st, "weft_path_exists");
    if (rc == 0)
        return 1;
    return rc == -ENOENT || rc == -ENOTDIR ? 0 : rc;
}

/* ---- read_all, write_all ---- */

/* Read f to its end into *buf (capacity *cap, grown as needed, one byte
 * kept for the NUL); the bytes read, or -errno. */
static ssize_t read_to_end(weft_file *f, char **buf, size_t *cap)
{
    size_t len = 0;
    for (;;) {
        if (len + 1 == *cap) {
            if (*cap > SSIZE_MAX / 2)
                return -EFBIG;
            char *b = realloc(*buf, *cap * 2);
            if (!b)
                return -ENOMEM;
            *buf = b;
            *cap *= 2;
        }
        ssize_t n = weft_file_read(f, *buf + len, *cap - 1 - len);
        if (n <= 0)
            return n < 0 ? n : (ssize_t)len;
        len += (size_t)n;
    }
}

WF_EXPORT ssize_t weft_path_read_all(const char *path, void **data)
{
    if (data)
        *data = NULL;
    int rc = path_entry(!data ? -EINVAL : !path ? -EFAULT : 0);
    if (rc < 0)
        return rc;
    weft_file *f;
    rc = weft_file_open(&f, path, O_RDONLY, 0);
    if (rc < 0)
        return rc;
    struct statx st;
    ssize_t r = weft_file_stat(f, &st);
    /* A regular file's size is a good first guess; /proc and pipes say 0
     * and are read until they end. */
    size_t size = r == 0 && S_ISREG(st.stx_mode) ? st.stx_size : 0;
    size_t cap = size ? size + 1 : 4096;
    char *buf = NULL;
    if (r == 0 && (size > SSIZE_MAX - 1 || !(buf = malloc(cap))))
        r = size > SSIZE_MAX - 1 ? -EFBIG : -ENOMEM;
    if (r == 0 && size) {
        /* One read of the whole size (weft_file_read loops on short reads
         * up to the end of the file). A file that grew meanwhile is read
         * as it was when stat looked. */
        r = weft_file_read(f, buf, size);
    } else if (r == 0) {
        r = read_to_end(f, &buf, &cap);
    }
    int crc = weft_file_close(f);
    if (r >= 0 && crc < 0)
        r = crc;
    if (r < 0) {
        free(buf);
        return r;
    }
    buf[r] = '\0';
    *data = buf;
    return r;
}

WF_EXPORT int weft_path_write_all(const char *path, const void *data, size_t n)
{
    int rc = path_entry(path && (data || !n) ? 0 : -EFAULT);
    if (rc < 0)
        return rc;
    weft_file *f;
    rc = weft_file_open(&f, path, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (rc < 0)
        return rc;
    ssize_t w = n ? weft_file_write(f, data, n) : 0;
    int crc = weft_file_close(f);
    if (w < 0)
        return (int)w;
    return crc;
}

/* ---- list, scan ---- */

struct list_job {
    const char *dir;
    bool stat;   /* scan: an lstat of each entry too */
    char *names; /* NUL-separated */
    size_t len, cap, count;
    struct statx *st; /* scan: one per name */
    size_t st_cap;
};

static int grow(void **p, size_t *cap, size_t need, size_t unit, size_t min)
{
    if (need <= *cap)
        return 0;
    size_t c = *cap ? *cap : min;
    while (c < need)
        c *= 2;
    void *b = wf_realloc(*p, c * unit);
    if (!b)
        return -ENOMEM;
    *p = b;
    *cap = c;
    return 0;
}

static int list_add(struct list_job *j, DIR *d, const char *name)
{
    size_t n = strlen(name) + 1;
    int rc = grow((void **)&j->names, &j->cap, j->len + n, 1, 4096);
    if (rc == 0 && j->stat)
        rc = grow((void **)&j->st, &j->st_cap, j->count + 1, sizeof *j->st, 16);
    if (rc < 0)
        return rc;
    if (j->stat && statx(dirfd(d), name, AT_SYMLINK_NOFOLLOW, STATX_BASIC_STATS,
                         &j->st[j->count]) < 0) {
        if (errno == ENOENT)
            return 0; /* removed since readdir: not an entry any more */
        return -errno;
    }
    memcpy(j->names + j->len, name, n);
    j->len += n;
    j->count++;
    return 0;
}

/* On a worker thread: every name of the directory but . and .. (and
 * for a scan, its lstat: fast here, the directory's dentries are hot). */
static int list_worker(void *arg)
{
    struct list_job *j = arg;
    DIR *d = opendir(j->dir);
    if (!d)
        return -errno;
    int rc = 0;
    for (;;) {
        errno = 0;
        struct dirent *e = readdir(d);
        if (!e) {
            rc = -errno;
            break;
        }
        const char *s = e->d_name;
        if (s[0] == '.' && (!s[1] || (s[1] == '.' && !s[2])))
            continue;
        if ((rc = list_add(j, d, s)) < 0)
            break;
    }
    closedir(d);
    return rc;
}

static int list_run(struct list_job *j, int (*each)(const char *, void *),
                    int (*each_st)(const char *, const struct statx *, void *),
                    void *arg)
{
    int rc = path_entry(!j->dir ? -EFAULT : !each && !each_st ? -EINVAL : 0);
    if (rc < 0)
        return rc;
    rc = weft_to_thread(list_worker, j, NULL, 0);
    if (rc == 0)
        rc = weft_checkpoint_if_cancelled(); /* noted while the worker ran */
    const char *name = j->names;
    for (size_t i = 0; rc == 0 && i < j->count; i++) {
        rc = each ? each(name, arg) : each_st(name, &j->st[i], arg);
        name += strlen(name) + 1;
    }
    wf_free(j->names);
    wf_free(j->st);
    return rc;
}

WF_EXPORT int weft_path_list(const char *dir,
                             int (*each)(const char *name, void *arg),
                             void *arg)
{
    struct list_job j = {.dir = dir};
    return list_run(&j, each, NULL, arg);
}

WF_EXPORT int weft_path_scan(const char *dir,
                             int (*each)(const char *name,
                                         const struct statx *st, void *arg),
                             void *arg)
{
    struct list_job j = {.dir = dir, .stat = true};
    return list_run(&j, NULL, each, arg);
}
