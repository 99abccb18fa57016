/* SPDX-License-Identifier: MIT */
/*
 * api/proc/process.c - starting, waiting for, signalling and closing a
 * child process.
 *
 * Start: posix_spawnp (glibc's is a clone(CLONE_VM | CLONE_VFORK): the
 * parent resumes once the child has exec'd or failed, and an exec that
 * failed is the call's error, never a child exiting 127), then a pidfd
 * for the child (pidfd_open: the child cannot have been reaped by anyone
 * in between unless the program reaps what is not its own). The child's
 * ends of the pipes and every other fd weft opens are O_CLOEXEC; the
 * ones the child keeps are dup2'd onto their numbers by the spawn's file
 * actions (a source that could collide with a target is first moved
 * above every target), and every other fd from 3 on is closed in the
 * child (closefrom), O_CLOEXEC or not.
 *
 * Wait: IORING_OP_WAITID on the pidfd where the kernel has it (Linux
 * 6.7), else a POLL_ADD on the pidfd (readable once the child has
 * exited) and waitid(P_PIDFD, WNOHANG) to reap.
 */
#include "api/proc/proc_impl.h"
#include "api/stream/stream_impl.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <weft/uring.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* IORING_OP_WAITID (Linux 6.7), newer than liburing 2.3's header: the
 * kernel's uapi number, probed with weft_uring_has_op before use. SQE:
 * fd = the id, len = the idtype, file_index = the options, addr2 = the
 * siginfo_t; addr, buf_index, addr3 and the op flags 0. */
enum { WF_OP_WAITID = 50 };

extern char **environ;

static int sys_pidfd_open(pid_t pid)
{
    return (int)syscall(SYS_pidfd_open, pid, 0);
}

static int sys_pidfd_send_signal(int pidfd, int sig)
{
    return (int)syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0);
}

/* waitpid's status from waitid's siginfo. */
static int status_of(const siginfo_t *si)
{
    switch (si->si_code) {
    case CLD_EXITED:
        return (si->si_status & 0xff) << 8;
    case CLD_DUMPED:
        return (si->si_status & 0x7f) | 0x80;
    default: /* CLD_KILLED */
        return si->si_status & 0x7f;
    }
}

static void reaped(weft_process *p, const siginfo_t *si)
{
    p->status = status_of(si);
    p->reaped = true;
}

/* Reap without blocking: 1 reaped, 0 still running, -errno. */
static int try_reap(weft_process *p)
{
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED | WNOHANG) < 0)
        return -errno;
    if (!si.si_pid)
        return 0;
    reaped(p, &si);
    return 1;
}

/* Wait for the child's end through the ring and reap it: 0, -ECANCELED,
 * -EBADF (g closing), -errno. g NULL: not through a gate. */
static int reap(weft_process *p, struct wf_gate *g, const char *what)
{
    bool use_waitid = wf_has_op(WF_OP_WAITID);
    for (;;) {
        int rc = try_reap(p);
        if (rc != 0)
            return rc < 0 ? rc : 0;
        struct io_uring_sqe *sqe = g ? wf_gate_sqe(g) : wf_sqe();
        if (!sqe)
            return g ? -EBADF : -EPERM;
        siginfo_t si;
        memset(&si, 0, sizeof si);
        if (use_waitid) {
            io_uring_prep_rw(WF_OP_WAITID, sqe, p->pidfd, NULL, P_PIDFD, 0);
            sqe->file_index = WEXITED;
            sqe->addr2 = (__u64)(uintptr_t)&si;
        } else {
            io_uring_prep_poll_add(sqe, p->pidfd, POLLIN);
        }
        rc =
            g ? wf_gate_await(g, sqe, WEFT_FOREVER, what) : wf_await(sqe, what);
        if (use_waitid && rc == 0 && si.si_pid) {
            reaped(p, &si);
            return 0;
        }
        if (rc == -ECANCELED || rc == -EBADF)
            return rc;
        if (use_waitid && rc == -EINVAL)
            use_waitid = false; /* an older kernel's number: poll instead */
        /* else: readable, or a transient error: look again */
    }
}

static void kill_child(weft_process *p)
{
    if (p->reaped)
        return;
    /* A zombie keeps its pid and its group's id: neither can be reused
     * before the reap. */
    if (p->own_group)
        kill(-p->pid, SIGKILL);
    sys_pidfd_send_signal(p->pidfd, SIGKILL);
}

void wf_process_kill_reap(weft_process *p)
{
    if (p->reaped)
        return;
    kill_child(p);
    if (!wf_self()) {
        /* Outside a task: block the thread until it is gone. */
        siginfo_t si;
        memset(&si, 0, sizeof si);
        while (waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &si, WEXITED) < 0) {
            if (errno != EINTR)
                return;
        }
        reaped(p, &si);
        return;
    }
    weft_scope shield;
    weft_scope_enter(&shield, WEFT_FOREVER);
    weft_scope_set_shield(&shield, true);
    while (!p->reaped) {
        int rc = reap(p, NULL, "weft_process_close");
        if (rc < 0 && rc != -ECANCELED && rc != -EINTR && rc != -EAGAIN)
            break; /* -ECHILD: reaped by someone else */
    }
    weft_scope_exit(&shield, 0);
}

/* ---- open ---- */

/* A source fd for target numbers below `above`: fd itself if it is at or
 * above it (no dup2 of an earlier action can have replaced it), else a
 * copy above it. */
static int source(int fd, int above, int *dups, size_t *ndups, size_t maxdups)
{
    if (fd >= above)
        return fd;
    if (*ndups == maxdups)
        return -EMFILE;
    int d = fcntl(fd, F_DUPFD_CLOEXEC, above);
    if (d < 0)
        return -errno;
    dups[(*ndups)++] = d;
    return d;
}

static bool stdio_ok(const weft_stdio *s, bool is_err)
{
    switch (s->how) {
    case WEFT_STDIO_PIPE:
    case WEFT_STDIO_INHERIT:
    case WEFT_STDIO_DEVNULL:
        return true;
    case WEFT_STDIO_FD:
        return s->fd >= 0;
    case WEFT_STDIO_TO_STDOUT:
        return is_err;
    default:
        return false;
    }
}

static void close_quiet(int *fd)
{
    if (*fd >= 0) {
        wf_close(*fd);
        *fd = -1;
    }
}

WF_EXPORT int weft_process_open(weft_process **out, const char *const argv[],
                                const weft_process_opts *opts)
{
    static const weft_process_opts defaults;
    if (out)
        *out = NULL;
    if (!opts)
        opts = &defaults;
    bool args_ok = out && argv && argv[0] && stdio_ok(&opts->in, false) &&
                   stdio_ok(&opts->out, false) && stdio_ok(&opts->err, true) &&
                   (opts->nfds == 0 || opts->fds) &&
                   !(opts->new_session && opts->new_group);
    for (size_t i = 0; args_ok && i < opts->nfds; i++)
        args_ok = opts->fds[i].fd >= 0 && opts->fds[i].child_fd >= 0;
    struct weft_task *t;
    int rc = wf_entry(&t, args_ok, false);
    if (rc < 0)
        return rc;

    const weft_stdio *io[3] = {&opts->in, &opts->out, &opts->err};
    int parent_end[3] = {-1, -1, -1}, child_end[3] = {-1, -1, -1};
    int devnull = -1, pidfd = -1;
    int *dups = NULL;
    size_t ndups = 0, maxdups = 4 + opts->nfds;
    weft_process *p = NULL;
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    bool fa_init = false, attr_init = false;

    /* Every target number is below `above`. */
    int above = 3;
    for (size_t i = 0; i < opts->nfds; i++)
        if (opts->fds[i].child_fd >= above)
            above = opts->fds[i].child_fd + 1;

    p = wf_calloc(1, sizeof *p);
    dups = wf_malloc(maxdups * sizeof *dups);
    if (!p || !dups) {
        rc = -ENOMEM;
        goto fail;
    }
    wf_gate_init(&p->gate);
    p->pidfd = -1;

    for (int i = 0; i < 3; i++) {
        if (io[i]->how == WEFT_STDIO_PIPE) {
            int fds[2];
            if (pipe2(fds, O_CLOEXEC) < 0) {
                rc = -errno;
                goto fail;
            }
            parent_end[i] = i == 0 ? fds[1] : fds[0];
            child_end[i] = i == 0 ? fds[0] : fds[1];
        } else if (io[i]->how == WEFT_STDIO_DEVNULL && devnull < 0) {
            devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
            if (devnull < 0) {
                rc = -errno;
                goto fail;
            }
        }
    }

    if ((rc = posix_spawn_file_actions_init(&fa)) != 0) {
        rc = -rc;
        goto fail;
    }
    fa_init = true;
    for (int i = 0; i < 3; i++) {
        int src;
        switch (io[i]->how) {
        case WEFT_STDIO_PIPE:
            src = child_end[i];
            break;
        case WEFT_STDIO_DEVNULL:
            src = devnull;
            break;
        case WEFT_STDIO_FD:
            src = io[i]->fd;
            break;
        case WEFT_STDIO_TO_STDOUT:
            src = -2;
            break;
        default:
            continue; /* inherited as it is */
        }
        if (src == -2) {
            rc = posix_spawn_file_actions_adddup2(&fa, 1, 2);
        } else {
            src = source(src, above, dups, &ndups, maxdups);
            if (src < 0) {
                rc = -src;
                goto fail_errno;
            }
            rc = posix_spawn_file_actions_adddup2(&fa, src, i);
        }
        if (rc != 0)
            goto fail_errno;
    }
    for (size_t i = 0; i < opts->nfds; i++) {
        int src = source(opts->fds[i].fd, above, dups, &ndups, maxdups);
        if (src < 0) {
            rc = -src;
            goto fail_errno;
        }
        rc = posix_spawn_file_actions_adddup2(&fa, src, opts->fds[i].child_fd);
        if (rc != 0)
            goto fail_errno;
    }
    /* Close what the child should not have even if it is not
     * O_CLOEXEC (opened by other code of the program): every fd from 3 on
     * but the extra ones' numbers (closing one that is not open is no
     * error to the spawn). */
    for (int fd = 3; fd < above; fd++) {
        bool target = false;
        for (size_t i = 0; i < opts->nfds && !target; i++)
            target = opts->fds[i].child_fd == fd;
        if (!target && (rc = posix_spawn_file_actions_addclose(&fa, fd)) != 0)
            goto fail_errno;
    }
    if ((rc = posix_spawn_file_actions_addclosefrom_np(&fa, above)) != 0)
        goto fail_errno;
    if (opts->cwd &&
        (rc = posix_spawn_file_actions_addchdir_np(&fa, opts->cwd)) != 0)
        goto fail_errno;

    if ((rc = posix_spawnattr_init(&attr)) != 0)
        goto fail_errno;
    attr_init = true;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
    if (opts->new_session)
        flags |= POSIX_SPAWN_SETSID;
    if (opts->new_group) {
        flags |= POSIX_SPAWN_SETPGROUP;
        posix_spawnattr_setpgroup(&attr, 0);
    }
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, flags);

    pid_t pid;
    rc = posix_spawnp(&pid, argv[0], &fa, &attr, (char *const *)argv,
                      opts->envp ? (char *const *)opts->envp : environ);
    if (rc != 0)
        goto fail_errno;
    pidfd = sys_pidfd_open(pid);
    if (pidfd < 0) {
        rc = -errno;
        kill(pid, SIGKILL);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        goto fail;
    }
    p->pid = pid;
    p->pidfd = pidfd;
    p->own_group = opts->new_session || opts->new_group;

    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    fa_init = attr_init = false;
    for (int i = 0; i < 3; i++)
        close_quiet(&child_end[i]);
    close_quiet(&devnull);
    for (size_t i = 0; i < ndups; i++)
        wf_close(dups[i]);
    ndups = 0;
    wf_free(dups);
    dups = NULL;

    weft_stream **ends[3] = {&p->in, &p->out, &p->err};
    for (int i = 0; i < 3; i++) {
        if (parent_end[i] < 0)
            continue;
        int fd = parent_end[i];
        parent_end[i] = -1;
        rc = wf_pipe_stream_new(fd, ends[i]); /* closes fd on failure */
        if (rc < 0) {
            for (int j = i + 1; j < 3; j++)
                close_quiet(&parent_end[j]);
            weft_process_close(p);
            return rc;
        }
    }
    *out = p;
    return 0;

fail_errno:
    rc = -rc;
fail:
    if (fa_init)
        posix_spawn_file_actions_destroy(&fa);
    if (attr_init)
        posix_spawnattr_destroy(&attr);
    for (int i = 0; i < 3; i++) {
        close_quiet(&parent_end[i]);
        close_quiet(&child_end[i]);
    }
    close_quiet(&devnull);
    for (size_t i = 0; i < ndups; i++)
        wf_close(dups[i]);
    wf_free(dups);
    wf_free(p);
    return rc;
}

/* ---- the rest ---- */

WF_EXPORT weft_stream *weft_process_stdin(weft_process *p)
{
    return p ? p->in : NULL;
}

WF_EXPORT weft_stream *weft_process_stdout(weft_process *p)
{
    return p ? p->out : NULL;
}

WF_EXPORT weft_stream *weft_process_stderr(weft_process *p)
{
    return p ? p->err : NULL;
}

WF_EXPORT int weft_process_pid(const weft_process *p)
{
    return p ? p->pid : -EINVAL;
}

WF_EXPORT int weft_process_wait(weft_process *p)
{
    struct weft_task *t;
    int rc = wf_entry(&t, p != NULL, p && p->gate.closing);
    if (rc == -ECANCELED && !p->waiting)
        wf_process_kill_reap(p); /* cancelled on entry: the same */
    if (rc < 0)
        return rc;
    if (p->reaped)
        return p->status;
    if (p->waiting)
        return -EBUSY;
    p->waiting = true;
    wf_gate_enter(&p->gate);
    rc = reap(p, &p->gate, "weft_process_wait");
    if (rc == -ECANCELED)
        wf_process_kill_reap(p);
    wf_gate_leave(&p->gate);
    p->waiting = false;
    return rc < 0 ? rc : p->status;
}

WF_EXPORT int weft_process_signal(weft_process *p, int sig)
{
    struct weft_task *t;
    int rc = wf_entry_nowait(&t, p != NULL && sig >= 0 && sig < NSIG,
                             p && p->gate.closing);
    if (rc < 0)
        return rc;
    if (p->reaped)
        return -ESRCH;
    return sys_pidfd_send_signal(p->pidfd, sig) < 0 ? -errno : 0;
}

WF_EXPORT int weft_process_close(weft_process *p)
{
    if (!p)
        return -EINVAL;
    if (p->gate.closing)
        return -EBADF;
    if (wf_self())
        wf_gate_close(&p->gate, "weft_process_close");
    else
        p->gate.closing = true;
    int rc = 0;
    /* The streams first: a child blocked writing into a full pipe sees
     * its reader go (and SIGKILL ends it anyway). */
    weft_stream **ends[3] = {&p->in, &p->out, &p->err};
    for (int i = 0; i < 3; i++) {
        if (*ends[i]) {
            int r = weft_stream_close(*ends[i]);
            if (r < 0 && rc == 0)
                rc = r;
            *ends[i] = NULL;
        }
    }
    if (p->pidfd >= 0) {
        wf_process_kill_reap(p);
        wf_close(p->pidfd);
    }
    wf_free(p);
    return rc;
}
