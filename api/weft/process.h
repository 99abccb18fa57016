/* SPDX-License-Identifier: MIT */
/*
 * weft/process.h - child processes (anyio's open_process and
 * run_process): start a program with its stdin, stdout and stderr as weft
 * streams, wait for it from a task, signal it, and close it with no zombie
 * and no fd left behind.
 *
 * A program that cannot be started is an error from weft_process_open
 * itself (-ENOENT, -EACCES, ...), never a child that exits 127. argv[0]
 * is looked up in PATH (execvp's rules; the parent's PATH). The child
 * starts with an empty signal mask and every signal at its default
 * disposition, and with no fd but 0, 1, 2 and the extra fds asked for.
 * weft never installs a SIGCHLD handler and reaps only its own children
 * (through a pidfd); a program that sets SIGCHLD to SIG_IGN, or reaps
 * with waitpid(-1, ...), takes the status away (-ECHILD).
 */
#ifndef WEFT_PROCESS_H
#define WEFT_PROCESS_H

#include <stddef.h>
#include <weft/base.h>
#include <weft/stream.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct weft_process weft_process;

/* What the child's stdin, stdout or stderr is. */
enum {
    WEFT_STDIO_PIPE = 0,  /* a pipe; the parent's end is a weft_stream */
    WEFT_STDIO_INHERIT,   /* the parent's own fd 0, 1 or 2 */
    WEFT_STDIO_DEVNULL,   /* /dev/null */
    WEFT_STDIO_FD,        /* the caller's fd (stays the caller's) */
    WEFT_STDIO_TO_STDOUT, /* stderr only: wherever stdout goes */
};

typedef struct weft_stdio {
    int how; /* WEFT_STDIO_* */
    int fd;  /* for WEFT_STDIO_FD */
} weft_stdio;

/* An extra fd for the child: the caller's fd becomes child_fd there. */
typedef struct weft_process_fd {
    int fd;
    int child_fd;
} weft_process_fd;

/* Zero (or NULL) is the default for every field. */
typedef struct weft_process_opts {
    weft_stdio in, out, err;    /* default: pipes */
    const char *const *envp;    /* NULL = the parent's environ; else a
                                   NULL-terminated "NAME=value" list */
    const char *cwd;            /* NULL = the parent's */
    bool new_session;           /* setsid() in the child */
    bool new_group;             /* its own process group (setpgid(0, 0)) */
    const weft_process_fd *fds; /* extra fds, dup'd to child_fd */
    size_t nfds;
} weft_process_opts;

/* Start argv[0] with argv (NULL-terminated). 0 or -errno; *out NULL on
 * failure. A checkpoint. */
int weft_process_open(weft_process **out, const char *const argv[],
                      const weft_process_opts *opts);
/* The parent's end of each pipe, or NULL unless it is a pipe. Owned by p
 * (closed by weft_process_close): end stdin with weft_stream_send_eof,
 * never weft_stream_close. */
weft_stream *weft_process_stdin(weft_process *p);
weft_stream *weft_process_stdout(weft_process *p);
weft_stream *weft_process_stderr(weft_process *p);
int weft_process_pid(const weft_process *p);
/*
 * Wait until the child ends and reap it: its wait status (WIFEXITED,
 * WEXITSTATUS, WIFSIGNALED, WTERMSIG, WCOREDUMP apply), again on every
 * later call; -EBUSY if another task is waiting; -EBADF if p is closing.
 * A cancelled wait kills the child (SIGKILL; its whole process group when
 * it has its own) and reaps it before it returns -ECANCELED.
 */
int weft_process_wait(weft_process *p);
/* Send sig (0: only check); -ESRCH once the child has been reaped. */
int weft_process_signal(weft_process *p, int sig);
/* Kill a child still running (SIGKILL, its group too when it has its
 * own), reap it, close the streams and fds, free p. Not cancellable; also
 * works outside a task (then it blocks the thread while it reaps). */
int weft_process_close(weft_process *p);
/*
 * Run argv to its end: write input to its stdin and close it, collect
 * stdout and stderr into malloc'd NUL-terminated buffers (*out, *err;
 * free() them; out or err NULL discards; the lengths may be NULL), wait
 * and set *status (may be NULL). 0 whatever the exit status; the open
 * call's error if it could not start; -ECANCELED (the child killed and
 * reaped) if cancelled. A child that exits without reading all of its
 * input is not an error.
 */
int weft_process_run(const char *const argv[], const void *input,
                     size_t input_len, char **out, size_t *out_len, char **err,
                     size_t *err_len, int *status);

#ifdef __cplusplus
}
#endif
#endif
