/* SPDX-License-Identifier: MIT */
/*
 * weft/file.h - files and paths on io_uring (anyio's open_file,
 * AsyncFile and Path).
 *
 * A weft_file is an open file with a position that weft keeps: read,
 * write and seek use and move it; pread and pwrite do not. Every call is a
 * checkpoint and returns a negative errno on failure; none leaks a file
 * descriptor, whatever point it fails or is cancelled at. Several tasks
 * may use one file at once (pread/pwrite run side by side; calls that use
 * the position take turns). Disk I/O already under way cannot always be
 * interrupted: a cancelled call may wait for it (docs/guide/files.md).
 *
 * struct statx: with _GNU_SOURCE, <sys/stat.h> declares it; this header
 * also includes <linux/stat.h>, which declares it and the STATX_* masks
 * in any case.
 */
#ifndef WEFT_FILE_H
#define WEFT_FILE_H

#include <fcntl.h>
#include <linux/stat.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <weft/base.h>
#include <weft/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

struct statx;
typedef struct weft_file weft_file;

/*
 * Open path (relative to the working directory) with open(2)'s flags and
 * mode; O_CLOEXEC is always added. *out is set on success, NULL on
 * failure. -ENOENT, -EISDIR (a directory for writing), -EACCES, ... as
 * open(2); -EINVAL for out NULL, -EFAULT for path NULL.
 */
int weft_file_open(weft_file **out, const char *path, int flags, mode_t mode);

/* At the file position, advancing it. Short only at end of file (or for
 * pipes, FIFOs and devices, which return what they have). 0 at end. */
ssize_t weft_file_read(weft_file *f, void *buf, size_t n);
/* At the file position (the end with O_APPEND), advancing it: all of n,
 * or -errno (a prefix may have been written; the position moves past it). */
ssize_t weft_file_write(weft_file *f, const void *buf, size_t n);
/* At offset; the position is neither used nor moved. */
ssize_t weft_file_pread(weft_file *f, void *buf, size_t n, off_t offset);
ssize_t weft_file_pwrite(weft_file *f, const void *buf, size_t n, off_t offset);
/* SEEK_SET, SEEK_CUR, SEEK_END (the size from statx), SEEK_DATA,
 * SEEK_HOLE: the new position; -EINVAL (negative result or whence),
 * -ESPIPE (a pipe, FIFO or socket), -EOVERFLOW. */
off_t weft_file_seek(weft_file *f, off_t offset, int whence);
int weft_file_sync(weft_file *f);     /* fsync(2) */
int weft_file_datasync(weft_file *f); /* fdatasync(2) */
/* ftruncate(2): IORING_OP_FTRUNCATE where the kernel has it (6.9+), else
 * on the worker pool. The position does not move. */
int weft_file_truncate(weft_file *f, off_t length);
/* statx(2) of the open file: STATX_BASIC_STATS | STATX_BTIME asked. */
int weft_file_stat(weft_file *f, struct statx *st);
/*
 * Closes the file and frees f, whatever the result (even when cancelled:
 * then it closes and returns -ECANCELED). Calls of other tasks still in
 * flight end first: on a regular file or block device close waits for
 * them; on anything else (a pipe, FIFO, socket, terminal) it cancels them
 * and they return -EBADF. A call that starts while close waits gets
 * -EBADF. Using f after close has returned is undefined.
 */
int weft_file_close(weft_file *f);
/*
 * The file as a byte stream (recv reads at the position, send writes all,
 * send_eof is -ENOTSUP, close closes the file). The stream owns f: do not
 * use or close f afterwards. NULL if f is NULL or closing, or out of
 * memory; then f is still the caller's.
 */
weft_stream *weft_file_stream(weft_file *f);

/* ---- extras ---- */

/* weft_file_options.flags */
/* O_DIRECT; buffers, sizes and offsets must be aligned (checked before
 * submitting: -EINVAL) */
#define WEFT_FILE_DIRECT 1u
/* Also register the file in the ring's table of fixed files
 * (IOSQE_FIXED_FILE on each read and write); falls back to the plain fd
 * where the kernel or the table cannot take it. */
#define WEFT_FILE_FIXED 2u

typedef struct weft_file_options {
    unsigned flags;   /* WEFT_FILE_* */
    size_t readahead; /* weft_file_stream: a recv of fewer bytes reads this
                         many into a buffer; 0 = 64 KiB, SIZE_MAX = none */
} weft_file_options;

/* weft_file_open with options (NULL = defaults). */
int weft_file_open_opts(weft_file **out, const char *path, int flags,
                        mode_t mode, const weft_file_options *opts);
/* The open file's descriptor (not for reads and writes of its own: they
 * would not move weft's position), or -EINVAL. */
int weft_file_fd(const weft_file *f);
/* With WEFT_FILE_DIRECT: the alignment reads and writes need (memory,
 * and offset and size), from statx's STATX_DIOALIGN (4096 each where the
 * kernel does not say); 1 and 1 otherwise. -EINVAL for f NULL. */
int weft_file_alignment(const weft_file *f, size_t *mem, size_t *offset);
/* fallocate(2) (mode 0: allocate; FALLOC_FL_* otherwise). */
int weft_file_allocate(weft_file *f, int mode, off_t offset, off_t len);

/*
 * Registered (fixed) buffers: the calling loop's ring pins n buffers
 * (IORING_REGISTER_BUFFERS) once, so a read or write into them skips the
 * kernel's per-call page pinning (READ_FIXED / WRITE_FIXED); worth it for
 * O_DIRECT, where every call pins its buffer otherwise. One set per loop:
 * -EBUSY if the loop has one, -EINVAL for iov NULL, n 0 or over 1024, or
 * a buffer NULL or empty; the kernel's -ENOMEM (RLIMIT_MEMLOCK on kernels
 * before 5.12), -EFAULT (not mapped, or file-backed memory before 6.x),
 * -EOVERFLOW (a buffer over 1 GiB). -EPERM outside a task. The buffers
 * stay the caller's memory; they are unregistered when the loop ends.
 */
int weft_file_register_buffers(const struct iovec *iov, unsigned n);
/* Unregister them (operations in flight finish with their buffers):
 * 0, or -ENXIO if the loop has none. */
int weft_file_unregister_buffers(void);
/* weft_file_pread and weft_file_pwrite into a registered buffer: all of
 * [buf, buf + n) must lie in one buffer of the calling loop's set, else
 * -EINVAL (no set, another loop's, or outside it); the O_DIRECT checks
 * are those of pread and pwrite. */
ssize_t weft_file_pread_fixed(weft_file *f, void *buf, size_t n, off_t offset);
ssize_t weft_file_pwrite_fixed(weft_file *f, const void *buf, size_t n,
                               off_t offset);

/* ---- paths ---- */

int weft_path_stat(const char *path, struct statx *st);  /* follows links */
int weft_path_lstat(const char *path, struct statx *st); /* extra: does not */
/* 1 if path exists (following links), 0 if not (-ENOENT, -ENOTDIR),
 * or another -errno (-EACCES, -ELOOP, ...). */
int weft_path_exists(const char *path);
int weft_path_mkdir(const char *path, mode_t mode); /* mode & ~umask */
int weft_path_unlink(const char *path);
int weft_path_rmdir(const char *path);
int weft_path_rename(const char *from, const char *to);
/* The whole file in a malloc'd buffer (*data, which the caller frees; one
 * NUL byte follows the data, not counted): its size, or -errno and *data
 * NULL. */
ssize_t weft_path_read_all(const char *path, void **data);
/* Create or truncate path (mode 0666 & ~umask) and write n bytes. */
int weft_path_write_all(const char *path, const void *data, size_t n);
/*
 * Call each(name, arg) for every entry of dir but "." and "..", in the
 * directory's order, on the calling task. The names are read on the
 * worker pool first. A non-zero return from each stops the listing and
 * is returned; else 0, or -errno (-ENOENT, -ENOTDIR, ...).
 */
int weft_path_list(const char *dir, int (*each)(const char *name, void *arg),
                   void *arg);
/*
 * Extra: as weft_path_list, with each entry's lstat (a statx with
 * AT_SYMLINK_NOFOLLOW and STATX_BASIC_STATS, made by the same worker: one
 * job per directory instead of one operation per entry; os.scandir).
 * An entry removed between readdir and its stat is left out.
 */
int weft_path_scan(const char *dir,
                   int (*each)(const char *name, const struct statx *st,
                               void *arg),
                   void *arg);

#ifdef __cplusplus
}
#endif
#endif
