/* SPDX-License-Identifier: MIT */
/*
 * api/fs/file.c - open files on io_uring: weft_file_* (OPENAT, READ, WRITE,
 * FSYNC, STATX, FALLOCATE, FTRUNCATE, CLOSE), the position weft keeps,
 * O_DIRECT alignment checks and registered (fixed) files.
 *
 * What this file keeps true:
 * - No fd leaks: an OPENAT that completes for a caller who has been
 *   cancelled meanwhile is closed at once; every failure after the open
 *   closes the fd; close closes even when cancelled.
 * - Close never frees the file under another task: calls under way are
 *   inside the file's gate (engine/gate.c) and close waits for them. On a
 * regular file their operations finish by themselves; on a pipe, FIFO, socket
 * or device they may never, so close cancels them (they return -EBADF).
 * - read/write/seek take the file's position lock, so concurrent calls
 *   that use the position take turns as they do on one struct file in
 *   the kernel; pread/pwrite do not take it.
 */
#include "api/fs/fs_impl.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft/thread.h>
#include <weft/uring.h>

#define WF_FILE_DEFAULT_READAHEAD ((size_t)64 << 10)
/* The fixed-file table this file registers on a ring that has none. */
#define WF_FIXED_TABLE 4096u

/* ---- the bracket around every call ---- */

int wf_file_enter(weft_file *f, int bad_arg)
{
    struct weft_task *t;
    int rc =
        wf_entry_err(&t, f ? bad_arg : -EINVAL, f && f->gate.closing, true);
    if (rc == 0)
        wf_gate_enter(&f->gate);
    return rc;
}

void wf_file_leave(weft_file *f)
{
    wf_gate_leave(&f->gate);
}

int wf_file_pos_lock(weft_file *f)
{
    int rc = weft_lock_try_acquire(&f->poslock);
    if (rc == -EAGAIN)
        rc = weft_lock_acquire(&f->poslock);
    if (rc == 0 && f->gate.closing) {
        weft_lock_release(&f->poslock);
        rc = -EBADF;
    }
    return rc;
}

void wf_file_pos_unlock(weft_file *f)
{
    weft_lock_release(&f->poslock);
}

/* What kind of file f is (fstat of an open fd: it does not wait on a
 * local disk). Asked only when it matters: a short read, a seek, a close
 * with calls under way. */
static int file_kind(weft_file *f)
{
    if (f->kind != WF_KIND_UNKNOWN)
        return f->kind;
    struct stat st;
    if (fstat(f->fd, &st) < 0)
        return WF_KIND_OTHER;
    if (S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))
        f->kind = WF_KIND_DISK;
    else if (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
        f->kind = WF_KIND_STREAM;
    else
        f->kind = WF_KIND_OTHER;
    return f->kind;
}

/* ---- one ring operation of a file ---- */

/* Await sqe as one of f's operations (-EBADF: cut short by a close). */
/* polled: sqe is the polled ring's (wf_poll_sqe). */
static int file_await_on(weft_file *f, struct io_uring_sqe *sqe, bool polled,
                         const char *what)
{
    if (f->gate.closing) {
        /* weft_uring_sqe waited for room and close began meanwhile: its
         * cancel has passed, so this operation must not start. */
        wf_sqe_drop(wf_cur, sqe);
        return -EBADF;
    }
    return polled ? wf_gate_await_polled(&f->gate, sqe, what)
                  : wf_gate_await(&f->gate, sqe, WEFT_FOREVER, what);
}

static int file_await(weft_file *f, struct io_uring_sqe *sqe, const char *what)
{
    return file_await_on(f, sqe, false, what);
}

/* The slot is an index into one ring's table: only that loop uses it. */
static void use_fixed(weft_file *f, struct io_uring_sqe *sqe)
{
    if (f->slot >= 0 && f->slot_loop == wf_cur) {
        sqe->fd = f->slot;
        sqe->flags |= IOSQE_FIXED_FILE;
    }
}

void wf_file_kill(weft_file *f)
{
    wf_gate_shut(&f->gate, true); /* nothing new starts */
}

/* ---- reads and writes ---- */

/*
 * WEFT_OPT_IOPOLL: an O_DIRECT file's reads and writes go to the loop's
 * polled ring until the device refuses one (-EOPNOTSUPP: no polled
 * queues, or a filesystem that cannot poll). The refused operation moved
 * nothing, so it is reissued on the main ring, and so are the file's
 * later ones: the caller sees an ordinary result on any device.
 */
static bool file_polled(const weft_file *f)
{
    return wf_cur->poll && (f->oflags & O_DIRECT) && !f->nopoll;
}

/* One read or write; idx: the registered buffer buf lies in (READ_FIXED,
 * WRITE_FIXED; registered with both rings), or -1. */
static void prep_rw(struct io_uring_sqe *sqe, int fd, bool write,
                    const void *buf, size_t n, off_t off, int idx)
{
    if (write && idx >= 0)
        io_uring_prep_write_fixed(sqe, fd, buf, (unsigned)n, (uint64_t)off,
                                  idx);
    else if (write)
        io_uring_prep_write(sqe, fd, buf, (unsigned)n, (uint64_t)off);
    else if (idx >= 0)
        io_uring_prep_read_fixed(sqe, fd, (void *)buf, (unsigned)n,
                                 (uint64_t)off, idx);
    else
        io_uring_prep_read(sqe, fd, (void *)buf, (unsigned)n, (uint64_t)off);
}

static ssize_t rw_once(weft_file *f, bool write, const void *buf, size_t n,
                       off_t off, int idx, const char *what)
{
    struct io_uring_sqe *sqe;
    /* Appends (off -1) need the file's own position: the main ring's. */
    if (off >= 0 && file_polled(f) && (sqe = wf_poll_sqe())) {
        /* The polled ring has no table of registered files: the plain fd. */
        prep_rw(sqe, f->fd, write, buf, n, off, idx);
        ssize_t r = file_await_on(f, sqe, true, what);
        if (r != -EOPNOTSUPP)
            return r;
        f->nopoll = true;
    }
    sqe = wf_sqe();
    prep_rw(sqe, f->fd, write, buf, n, off, idx);
    use_fixed(f, sqe);
    return file_await(f, sqe, what);
}

static ssize_t read_once(weft_file *f, void *buf, size_t n, off_t off, int idx)
{
    return rw_once(f, false, buf, n, off, idx, "weft_file_read");
}

static ssize_t read_at(weft_file *f, void *buf, size_t n, off_t off, bool some,
                       int idx)
{
    size_t done = 0;
    while (done < n) {
        size_t want = n - done < WF_FILE_CHUNK ? n - done : WF_FILE_CHUNK;
        ssize_t r =
            read_once(f, (char *)buf + done, want, off + (off_t)done, idx);
        if (r < 0 && done == 0)
            return r;
        if (r <= 0)
            break; /* end of file, or an error after data: read(2)'s rule */
        done += (size_t)r;
        if (some)
            break;
        if ((size_t)r == want)
            continue;
        /* Short: the end of a regular file (a direct read at the end is
         * never followed up: the next offset would be unaligned), or what
         * a pipe or device had. Only a regular file reads on. */
        if (f->mem_align > 1 || file_kind(f) != WF_KIND_DISK)
            break;
    }
    return (ssize_t)done;
}

ssize_t wf_file_read_at(weft_file *f, void *buf, size_t n, off_t off, bool some)
{
    return read_at(f, buf, n, off, some, -1);
}

static ssize_t write_once(weft_file *f, const void *buf, size_t n, off_t off,
                          int idx)
{
    return rw_once(f, true, buf, n, off, idx, "weft_file_write");
}

static int write_at(weft_file *f, const void *buf, size_t n, off_t off,
                    size_t *done, int idx)
{
    *done = 0;
    while (*done < n) {
        size_t want = n - *done < WF_FILE_CHUNK ? n - *done : WF_FILE_CHUNK;
        off_t at = off < 0 ? -1 : off + (off_t)*done;
        ssize_t r = write_once(f, (const char *)buf + *done, want, at, idx);
        if (r < 0)
            return (int)r;
        if (r == 0)
            return -EIO; /* a file that takes nothing would loop forever */
        *done += (size_t)r;
    }
    return 0;
}

int wf_file_write_at(weft_file *f, const void *buf, size_t n, off_t off,
                     size_t *done)
{
    return write_at(f, buf, n, off, done, -1);
}

/* The checks every read and write makes before submitting anything. */
static int check_io(const weft_file *f, const void *buf, size_t n, off_t off)
{
    if (!buf && n)
        return -EFAULT;
    if (n > SSIZE_MAX || off < 0)
        return -EINVAL;
    if (f->mem_align > 1 && ((uintptr_t)buf % f->mem_align ||
                             n % f->off_align || (size_t)off % f->off_align))
        return -EINVAL;
    return 0;
}

WF_EXPORT ssize_t weft_file_pread(weft_file *f, void *buf, size_t n,
                                  off_t offset)
{
    int rc = wf_file_enter(f, buf || !n ? 0 : -EFAULT);
    if (rc < 0)
        return rc;
    ssize_t r = check_io(f, buf, n, offset);
    if (r == 0)
        r = wf_file_read_at(f, buf, n, offset, false);
    wf_file_leave(f);
    return r;
}

WF_EXPORT ssize_t weft_file_pwrite(weft_file *f, const void *buf, size_t n,
                                   off_t offset)
{
    int rc = wf_file_enter(f, buf || !n ? 0 : -EFAULT);
    if (rc < 0)
        return rc;
    size_t done;
    ssize_t r = check_io(f, buf, n, offset);
    if (r == 0)
        r = wf_file_write_at(f, buf, n, offset, &done);
    wf_file_leave(f);
    return r < 0 ? r : (ssize_t)n;
}

/* ---- registered (fixed) buffers ---- */

/* The most buffers one loop registers (the kernel's own cap is 16384). */
#define WF_FIXED_MAX 1024u

WF_EXPORT int weft_file_register_buffers(const struct iovec *iov, unsigned n)
{
    struct weft_task *t;
    int rc = wf_entry_err(&t, 0, false, false);
    if (rc < 0)
        return rc;
    if (!iov || n == 0 || n > WF_FIXED_MAX)
        return -EINVAL;
    for (unsigned i = 0; i < n; i++)
        if (!iov[i].iov_base || iov[i].iov_len == 0)
            return -EINVAL;
    struct wf_loop *L = t->loop;
    if (L->fixed)
        return -EBUSY;
    struct iovec *copy = wf_calloc(n, sizeof *copy);
    if (!copy)
        return -ENOMEM;
    memcpy(copy, iov, n * sizeof *copy);
    /* The epoll backend's pool reads into them as into any buffer. The
     * polled ring (WEFT_OPT_IOPOLL) gets them too, under the same
     * indices: a fixed read goes to whichever ring its file uses. */
    rc = L->ring.ep ? 0 : io_uring_register_buffers(&L->ring.ring, copy, n);
    if (rc == 0 && L->poll) {
        rc = io_uring_register_buffers(&L->poll->ring, copy, n);
        if (rc < 0)
            (void)io_uring_unregister_buffers(&L->ring.ring);
    }
    if (rc < 0) {
        wf_free(copy);
        return rc;
    }
    L->fixed = copy;
    L->nfixed = n;
    return 0;
}

WF_EXPORT int weft_file_unregister_buffers(void)
{
    struct weft_task *t;
    int rc = wf_entry_err(&t, 0, false, false);
    if (rc < 0)
        return rc;
    struct wf_loop *L = t->loop;
    if (!L->fixed)
        return -ENXIO;
    /* Operations in flight keep their buffers pinned until they end
     * (the kernel's resource references, 5.13+). */
    rc = L->ring.ep ? 0 : io_uring_unregister_buffers(&L->ring.ring);
    if (rc < 0)
        return rc;
    /* It has the same set, so it cannot refuse what the main ring took. */
    if (L->poll)
        (void)io_uring_unregister_buffers(&L->poll->ring);
    wf_free(L->fixed);
    L->fixed = NULL;
    L->nfixed = 0;
    return 0;
}

/* The registered buffer of the calling loop that holds all of
 * [buf, buf + n), or -EINVAL. */
static int fixed_index(const void *buf, size_t n)
{
    const struct wf_loop *L = wf_cur;
    uintptr_t a = (uintptr_t)buf;
    for (unsigned i = 0; L && i < L->nfixed; i++) {
        uintptr_t b = (uintptr_t)L->fixed[i].iov_base;
        if (a >= b && n <= L->fixed[i].iov_len &&
            a - b <= L->fixed[i].iov_len - n)
            return (int)i;
    }
    return -EINVAL;
}

WF_EXPORT ssize_t weft_file_pread_fixed(weft_file *f, void *buf, size_t n,
                                        off_t offset)
{
    int rc = wf_file_enter(f, buf ? 0 : -EFAULT);
    if (rc < 0)
        return rc;
    ssize_t r = check_io(f, buf, n, offset);
    int idx = r == 0 ? fixed_index(buf, n) : 0;
    if (r == 0 && idx < 0)
        r = idx;
    if (r == 0)
        r = read_at(f, buf, n, offset, false, idx);
    wf_file_leave(f);
    return r;
}

WF_EXPORT ssize_t weft_file_pwrite_fixed(weft_file *f, const void *buf,
                                         size_t n, off_t offset)
{
    int rc = wf_file_enter(f, buf ? 0 : -EFAULT);
    if (rc < 0)
        return rc;
    size_t done;
    ssize_t r = check_io(f, buf, n, offset);
    int idx = r == 0 ? fixed_index(buf, n) : 0;
    if (r == 0 && idx < 0)
        r = idx;
    if (r == 0)
        r = write_at(f, buf, n, offset, &done, idx);
    wf_file_leave(f);
    return r < 0 ? r : (ssize_t)n;
}

WF_EXPORT ssize_t weft_file_read(weft_file *f, void *buf, size_t n)
{
    int rc = wf_file_enter(f, buf || !n ? 0 : -EFAULT);
    if (rc < 0)
        return rc;
    ssize_t r = wf_file_pos_lock(f);
    if (r == 0) {
        r = check_io(f, buf, n, f->pos);
        if (r == 0)
            r = wf_file_read_at(f, buf, n, f->pos, false);
        if (r > 0)
            f->pos += r;
        wf_file_pos_unlock(f);
    }
    wf_file_leave(f);
    return r;
}

WF_EXPORT ssize_t weft_file_write(weft_file *f, const void *buf, size_t n)
{
    int rc = wf_file_enter(f, buf || !n ? 0 : -EFAULT);
    if (rc < 0)
        return rc;
    ssize_t r = wf_file_pos_lock(f);
    if (r == 0) {
        size_t done = 0;
        bool append = f->oflags & O_APPEND;
        r = check_io(f, buf, n, f->pos);
        if (r == 0)
            r = wf_file_write_at(f, buf, n, append ? -1 : f->pos, &done);
        if (append) {
            /* The kernel appended at its own position (the end). */
            off_t end = lseek(f->fd, 0, SEEK_CUR);
            if (end >= 0)
                f->pos = end;
        } else {
            f->pos += (off_t)done;
        }
        if (r == 0)
            r = (ssize_t)n;
        wf_file_pos_unlock(f);
    }
    wf_file_leave(f);
    return r;
}

/* ---- statx, seek ---- */

static int statx_fd(weft_file *f, unsigned mask, struct statx *st)
{
    struct io_uring_sqe *sqe = wf_sqe();
    io_uring_prep_statx(sqe, f->fd, "", AT_EMPTY_PATH | AT_STATX_SYNC_AS_STAT,
                        mask, st);
    return file_await(f, sqe, "weft_file_stat");
}

WF_EXPORT int weft_file_stat(weft_file *f, struct statx *st)
{
    int rc = wf_file_enter(f, st ? 0 : -EFAULT);
    if (rc < 0)
        return rc;
    rc = st ? statx_fd(f, STATX_BASIC_STATS | STATX_BTIME, st) : -EFAULT;
    wf_file_leave(f);
    return rc;
}

struct seek_job {
    int fd, whence;
    off_t offset, result;
};

static int seek_worker(void *arg)
{
    struct seek_job *j = arg;
    j->result = lseek(j->fd, j->offset, j->whence);
    return j->result < 0 ? -errno : 0;
}

static off_t seek_locked(weft_file *f, off_t offset, int whence)
{
    off_t base;
    if (file_kind(f) == WF_KIND_STREAM)
        return -ESPIPE;
    switch (whence) {
    case SEEK_SET:
        base = 0;
        break;
    case SEEK_CUR:
        base = f->pos;
        break;
    case SEEK_END: {
        struct statx st;
        int rc = statx_fd(f, STATX_SIZE, &st);
        if (rc < 0)
            return rc;
        base = (off_t)st.stx_size;
        break;
    }
    case SEEK_DATA:
    case SEEK_HOLE: {
        /* No opcode for these: the filesystem's own lseek, on a worker. */
        struct seek_job j = {.fd = f->fd, .whence = whence, .offset = offset};
        int rc = weft_to_thread(seek_worker, &j, NULL, 0);
        return rc < 0 ? rc : j.result;
    }
    default:
        return -EINVAL;
    }
    if (offset > 0 && base > (off_t)(INT64_MAX - offset))
        return -EOVERFLOW;
    if (base + offset < 0)
        return -EINVAL;
    return base + offset;
}

WF_EXPORT off_t weft_file_seek(weft_file *f, off_t offset, int whence)
{
    int rc = wf_file_enter(f, 0);
    if (rc < 0)
        return rc;
    off_t r = wf_file_pos_lock(f);
    if (r == 0) {
        r = seek_locked(f, offset, whence);
        if (r >= 0)
            f->pos = r;
        wf_file_pos_unlock(f);
    }
    wf_file_leave(f);
    return r;
}

/* ---- sync, truncate, allocate ---- */

static int fsync_file(weft_file *f, unsigned flags, const char *what)
{
    int rc = wf_file_enter(f, 0);
    if (rc < 0)
        return rc;
    struct io_uring_sqe *sqe = wf_sqe();
    io_uring_prep_fsync(sqe, f->fd, flags);
    use_fixed(f, sqe);
    rc = file_await(f, sqe, what);
    wf_file_leave(f);
    return rc;
}

WF_EXPORT int weft_file_sync(weft_file *f)
{
    return fsync_file(f, 0, "weft_file_sync");
}

WF_EXPORT int weft_file_datasync(weft_file *f)
{
    return fsync_file(f, IORING_FSYNC_DATASYNC, "weft_file_datasync");
}

struct truncate_job {
    int fd;
    off_t length;
};

static int truncate_worker(void *arg)
{
    struct truncate_job *j = arg;
    return ftruncate(j->fd, j->length) < 0 ? -errno : 0;
}

WF_EXPORT int weft_file_truncate(weft_file *f, off_t length)
{
    int rc = wf_file_enter(f, 0);
    if (rc < 0)
        return rc;
    if (length < 0) {
        rc = -EINVAL;
    } else if (wf_has_op(WF_OP_FTRUNCATE)) {
        struct io_uring_sqe *sqe = wf_sqe();
        io_uring_prep_rw(WF_OP_FTRUNCATE, sqe, f->fd, NULL, 0,
                         (uint64_t)length);
        use_fixed(f, sqe);
        rc = file_await(f, sqe, "weft_file_truncate");
    } else {
        struct truncate_job j = {.fd = f->fd, .length = length};
        rc = weft_to_thread(truncate_worker, &j, NULL, 0);
    }
    wf_file_leave(f);
    return rc;
}

WF_EXPORT int weft_file_allocate(weft_file *f, int mode, off_t offset,
                                 off_t len)
{
    int rc = wf_file_enter(f, 0);
    if (rc < 0)
        return rc;
    if (offset < 0 || len <= 0) {
        rc = -EINVAL;
    } else {
        struct io_uring_sqe *sqe = wf_sqe();
        io_uring_prep_fallocate(sqe, f->fd, mode, offset, len);
        use_fixed(f, sqe);
        rc = file_await(f, sqe, "weft_file_allocate");
    }
    wf_file_leave(f);
    return rc;
}

WF_EXPORT int weft_file_fd(const weft_file *f)
{
    return f ? f->fd : -EINVAL;
}

WF_EXPORT int weft_file_alignment(const weft_file *f, size_t *mem,
                                  size_t *offset)
{
    if (!f)
        return -EINVAL;
    if (mem)
        *mem = f->mem_align;
    if (offset)
        *offset = f->off_align;
    return 0;
}

/* ---- open ---- */

/* The O_DIRECT alignment of an open file (Linux 6.1 reports it). */
static int direct_alignment(weft_file *f)
{
    struct statx st;
    memset(&st, 0, sizeof st);
    int rc = statx_fd(f, STATX_DIOALIGN, &st);
    if (rc < 0)
        return rc;
    f->mem_align = f->off_align = 4096;
    if ((st.stx_mask & STATX_DIOALIGN) && st.stx_dio_mem_align &&
        st.stx_dio_offset_align) {
        f->mem_align = st.stx_dio_mem_align;
        f->off_align = st.stx_dio_offset_align;
    }
    return 0;
}

/* The kernel refuses a table larger than RLIMIT_NOFILE (and liburing
 * would raise the limit for the whole process: not ours to change). */
static unsigned fixed_table_size(void)
{
    struct rlimit rl;
    unsigned n = WF_FIXED_TABLE;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < n)
        n = (unsigned)rl.rlim_cur;
    return n;
}

/*
 * Put f's fd in the ring's fixed-file table (a slot the kernel picks:
 * IORING_FILE_INDEX_ALLOC, Linux 5.19). A ring without a table gets a
 * sparse one. Any failure leaves f on its plain fd: fixed files are only
 * an optimisation.
 */
static void fixed_install(weft_file *f)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int fds[1] = {f->fd};
        struct io_uring_sqe *sqe = wf_sqe();
        io_uring_prep_files_update(sqe, fds, 1, (int)IORING_FILE_INDEX_ALLOC);
        int rc = file_await(f, sqe, "weft_file_open");
        if (rc == 1) {
            f->slot = fds[0];
            f->slot_loop = wf_cur;
            return;
        }
        if (rc == -ECANCELED || attempt)
            return;
        /* No table yet (-ENXIO): register a sparse one on this loop's
         * ring. -EBUSY means someone did; then the slot failed for good. */
        if (wf_files_table(wf_cur, fixed_table_size()) < 0)
            return;
    }
}

static void fixed_remove(weft_file *f)
{
    struct io_uring_sqe *sqe = wf_sqe();
    io_uring_prep_close_direct(sqe, (unsigned)f->slot);
    wf_await(sqe, "weft_file_close");
    f->slot = -1;
}

static int open_fd(const char *path, int flags, mode_t mode)
{
    struct io_uring_sqe *sqe = wf_sqe();
    io_uring_prep_openat(sqe, AT_FDCWD, path, flags, mode);
    int fd = wf_await(sqe, "weft_file_open");
    if (fd >= 0 && weft_checkpoint_if_cancelled() < 0) {
        /* Opened although the caller was cancelled meanwhile: nobody
         * will get this fd, so it must not outlive the call. */
        wf_close(fd);
        return -ECANCELED;
    }
    return fd;
}

WF_EXPORT int weft_file_open_opts(weft_file **out, const char *path, int flags,
                                  mode_t mode, const weft_file_options *opts)
{
    struct weft_task *t;
    int rc = wf_entry_err(&t,
                          !out    ? -EINVAL
                          : !path ? -EFAULT
                                  : 0,
                          false, true);
    if (out)
        *out = NULL;
    if (rc < 0)
        return rc;
    weft_file_options o = opts ? *opts : (weft_file_options){0};
    if (o.flags & ~(WEFT_FILE_DIRECT | WEFT_FILE_FIXED))
        return -EINVAL;
    weft_file *f = wf_calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    flags |= O_CLOEXEC;
    if (o.flags & WEFT_FILE_DIRECT)
        flags |= O_DIRECT;
    int fd = open_fd(path, flags, mode);
    if (fd < 0) {
        wf_free(f);
        return fd;
    }
    f->fd = fd;
    f->slot = -1;
    f->oflags = flags;
    f->mem_align = f->off_align = 1;
    f->readahead = o.readahead ? o.readahead : WF_FILE_DEFAULT_READAHEAD;
    wf_gate_init(&f->gate);
    weft_lock_init(&f->poslock);
    if (flags & O_DIRECT)
        rc = direct_alignment(f);
    if (rc == 0 && (o.flags & WEFT_FILE_FIXED))
        fixed_install(f);
    if (rc == 0)
        rc = weft_checkpoint_if_cancelled();
    if (rc < 0) {
        if (f->slot >= 0)
            wf_files_clear(t->loop, f->slot);
        wf_close(fd);
        wf_free(f);
        return rc;
    }
    *out = f;
    return 0;
}

WF_EXPORT int weft_file_open(weft_file **out, const char *path, int flags,
                             mode_t mode)
{
    return weft_file_open_opts(out, path, flags, mode, NULL);
}

/* ---- close ---- */

/* Close the fd through the ring, shielded: a cancelled close still
 * closes (and so never leaks); the cancellation is reported after. */
static int close_fd(weft_file *f)
{
    weft_scope shield;
    weft_scope_enter(&shield, WEFT_FOREVER);
    weft_scope_set_shield(&shield, true);
    if (f->slot >= 0 && f->slot_loop == wf_cur)
        fixed_remove(f);
    struct io_uring_sqe *sqe = wf_sqe();
    io_uring_prep_close(sqe, f->fd);
    int rc = wf_await(sqe, "weft_file_close");
    weft_scope_exit(&shield, 0);
    return rc;
}

int wf_file_close_now(weft_file *f)
{
    struct weft_task *t = wf_self();
    if (!t) {
        /* Outside a loop nothing can be in flight. */
        int rc = wf_close(f->fd) < 0 ? -errno : 0;
        wf_free(f);
        return rc;
    }
    /* Disk I/O always finishes: wait for it. Reads of a FIFO may never
     * end: cancel them. */
    wf_gate_shut(&f->gate, f->gate.users && file_kind(f) != WF_KIND_DISK);
    wf_gate_wait(&f->gate, "weft_file_close");
    int cancelled = weft_checkpoint_if_cancelled();
    int rc = close_fd(f);
    wf_free(f);
    return cancelled < 0 ? cancelled : rc;
}

WF_EXPORT int weft_file_close(weft_file *f)
{
    if (!f)
        return -EINVAL;
    if (f->gate.closing)
        return -EBADF;
    return wf_file_close_now(f);
}

/* A weft_file over an fd the program already has (weft_stream_from_fd):
 * it takes fd, and starts at the fd's own position. */
int wf_file_from_fd(int fd, weft_file **out)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -errno;
    weft_file *f = wf_calloc(1, sizeof *f);
    if (!f)
        return -ENOMEM;
    off_t pos = lseek(fd, 0, SEEK_CUR);
    f->fd = fd;
    f->slot = -1;
    f->pos = pos < 0 ? 0 : pos;
    f->oflags = fl;
    f->mem_align = f->off_align = 1;
    f->readahead = WF_FILE_DEFAULT_READAHEAD;
    wf_gate_init(&f->gate);
    weft_lock_init(&f->poslock);
    if (fl & O_DIRECT) {
        int rc = direct_alignment(f);
        if (rc < 0) {
            wf_free(f);
            return rc;
        }
    }
    *out = f;
    return 0;
}
