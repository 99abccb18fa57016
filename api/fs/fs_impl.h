/* SPDX-License-Identifier: MIT */
/*
 * api/fs/fs_impl.h - what api/fs/file.c shares with the file stream
 * (file_stream.c) and the path calls (path.c). Internal.
 */
#ifndef WF_API_FS_IMPL_H
#define WF_API_FS_IMPL_H

#include "engine/engine.h"
#include <weft/file.h>
#include <weft/sync.h>

/* Opcodes and flags that liburing 2.3's header does not name yet (the
 * kernel's uapi numbers; probed with weft_uring_has_op before use). */
enum { WF_OP_FTRUNCATE = 55 }; /* IORING_OP_FTRUNCATE, Linux 6.9 */

/* The most one read or write SQE asks for (the kernel caps a transfer at
 * 2 GiB - 4 KiB anyway). */
#define WF_FILE_CHUNK ((size_t)1 << 30)

enum wf_file_kind {
    WF_KIND_UNKNOWN = 0,
    WF_KIND_DISK,   /* regular file, block device: short only at the end,
                       operations always finish */
    WF_KIND_STREAM, /* pipe, FIFO, socket: no position, reads may block */
    WF_KIND_OTHER,  /* a character device, a directory...: reads may block */
};

struct weft_file {
    int fd;   /* the descriptor, always open until close */
    int slot; /* its index in the ring's fixed-file table, or -1 */
    struct wf_loop *slot_loop;   /* the loop whose ring has that table */
    off_t pos;                   /* weft's file position */
    int oflags;                  /* the open flags */
    uint8_t kind;                /* enum wf_file_kind, found out when needed */
    bool nopoll;                 /* the polled ring refused it: main ring */
    struct wf_gate gate;         /* calls under way; close waits for them */
    weft_lock poslock;           /* taken by the calls that use the position */
    size_t mem_align, off_align; /* O_DIRECT's, else 1 */
    size_t readahead;            /* for weft_file_stream */
};

/* A call's bracket, wf_entry's order: -EPERM outside a task, -EINVAL for
 * NULL, bad_arg (the caller's verdict on its other arguments), -EBADF
 * once closing, -ECANCELED; 0 = entered (leave once done). */
int wf_file_enter(weft_file *f, int bad_arg);
void wf_file_leave(weft_file *f);
int wf_file_pos_lock(weft_file *f);
void wf_file_pos_unlock(weft_file *f);
/* Read at off: with some, one operation (a stream's recv); else loop on
 * short reads until n or end of file (for seekable files). */
ssize_t wf_file_read_at(weft_file *f, void *buf, size_t n, off_t off,
                        bool some);
/* Write all of n at off (-1: the kernel's position, for O_APPEND); *done
 * counts what was written, also on failure. */
int wf_file_write_at(weft_file *f, const void *buf, size_t n, off_t off,
                     size_t *done);
/* Start closing f: nothing new starts (-EBADF), and every ring operation
 * in flight is cancelled. */
void wf_file_kill(weft_file *f);
/* Close f (closing already set or not), wait for its calls, free it. */
int wf_file_close_now(weft_file *f);
/* A file over fd (taken on success only), at fd's position. */
int wf_file_from_fd(int fd, weft_file **out);

#endif
