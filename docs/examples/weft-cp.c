/* SPDX-License-Identifier: MIT */
/*
 * weft-cp.c - copy a file or a directory tree, many files at once.
 *
 *     weft-cp [-j CORES] [-n FILES] [-q] SRC DST
 *
 * Like `cp -r SRC DST` (DST an existing directory: into DST/basename(SRC)),
 * and it keeps each file's and directory's mode bits (cp -p's modes; not
 * owners or times). Symbolic links inside the tree are copied as links;
 * other special files are skipped with a message. FILES files are copied
 * at once on each core (default 64), on CORES cores (default 1; 0 = one
 * per CPU of the affinity mask; more than that is cut down to it); each
 * directory's entries are looked at by tasks of their own. On a terminal
 * it shows a progress line (files and bytes done, rewritten in place); -q
 * or a pipe keeps it quiet. Exit status 0, or 1 if anything failed (each
 * failure is printed, and the copy goes on).
 *
 * The structure: a directory task scans its directory (weft_path_scan:
 * the names and their lstat, read on the worker pool in one job), then
 * spawns into the directory's group a directory task per subdirectory,
 * and hands on each file or link:
 *
 *  - on one core, to a file task of its own in the directory's group. A
 *    file task's token of a limiter of FILES tokens is taken on its
 *    behalf before it is spawned, so at most FILES file tasks exist at
 *    once; directory tasks hold none. A directory's mode is set once its
 *    group has ended (so a read-only directory can still be filled).
 *
 *  - on several cores (weft_run_cores), into a shared channel
 *    (weft_chan_open_shared, capacity 4 * FILES * CORES). Every core,
 *    core 0 included, runs FILES copier tasks that take entries from the
 *    channel until it ends, each copying with its own core's ring; the
 *    directory tasks all run on core 0 and wait (a full channel) when the
 *    copiers are behind. Directories' modes are set at the end, deepest
 *    first, once every copier has ended.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft.h>

#define COPY_CHUNK ((size_t)1 << 20)

#define MAX_CORES 1024

/* One core's counts, on a cache line of its own: each core adds to its
 * own, the progress line sums them. */
struct counts {
    _Alignas(64) _Atomic unsigned long long files, bytes;
};

/* A directory whose mode is set at the end (several cores). */
struct dir_mode {
    struct dir_mode *next;
    mode_t mode;
    char path[];
};

struct copy {
    weft_limiter files; /* one core: tokens, entries copied at once */
    weft_chan_tx *tx;   /* several cores: entries to the copiers */
    unsigned cores, per_core;
    struct counts *counts; /* [cores] */
    _Atomic int failures;
    mode_t umask;
    weft_event finished;   /* the copy is over: the progress line ends */
    struct dir_mode *dirs; /* several cores: deepest (latest) first */
};

struct entry {
    struct copy *c;
    char *src, *dst;
    mode_t mode; /* from the directory scan's lstat */
    size_t size;
};

static void count(struct copy *c, unsigned long long files,
                  unsigned long long bytes);

static void report(struct copy *c, const char *path, int rc)
{
    fprintf(stderr, "\nweft-cp: %s: %s\n", path, weft_strerror(rc));
    atomic_fetch_add(&c->failures, 1);
}

static void count(struct copy *c, unsigned long long files,
                  unsigned long long bytes)
{
    struct counts *k = &c->counts[weft_core_id()];
    if (files)
        atomic_fetch_add_explicit(&k->files, files, memory_order_relaxed);
    if (bytes)
        atomic_fetch_add_explicit(&k->bytes, bytes, memory_order_relaxed);
}

static char *join(const char *dir, const char *name)
{
    char *p;
    return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

/* A large file: copy_file_range(2), the kernel copying page cache to
 * page cache with no round trip through this process's memory (as cp
 * does). io_uring has no opcode for it: one worker-pool job per file,
 * COPY_RANGE bytes per call, checking for a cancellation in between. */
#define COPY_RANGE ((size_t)64 << 20)

struct range_job {
    int in, out;
    size_t size, done;
    struct copy *c;
};

static int copy_range_worker(void *arg)
{
    struct range_job *r = arg;
    while (r->done < r->size) {
        size_t want = r->size - r->done;
        ssize_t n = copy_file_range(r->in, NULL, r->out, NULL,
                                    want < COPY_RANGE ? want : COPY_RANGE, 0);
        if (n < 0)
            return -errno;
        if (n == 0)
            break; /* it shrank meanwhile */
        r->done += (size_t)n;
        count(r->c, 0, (size_t)n);
        int rc = weft_from_thread_check_cancelled();
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* Copy the regular file e->src (size bytes, mode) to e->dst. */
static int copy_file(struct entry *e, size_t size, mode_t mode)
{
    weft_file *in, *out;
    int rc = weft_file_open(&in, e->src, O_RDONLY, 0);
    if (rc < 0)
        return rc;
    rc = weft_file_open(&out, e->dst, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (rc < 0) {
        weft_file_close(in);
        return rc;
    }
    size_t done = 0;
    if (size >= COPY_CHUNK) {
        struct range_job r = {weft_file_fd(in), weft_file_fd(out), size, 0,
                              e->c};
        rc = weft_to_thread(copy_range_worker, &r, NULL, 0);
        done = r.done;
        /* Not between these files (another filesystem on an old kernel,
         * a special file): read and write from where it stopped. */
        if (rc == -EXDEV || rc == -EINVAL || rc == -ENOSYS ||
            rc == -EOPNOTSUPP) {
            rc = 0;
            if (weft_file_seek(in, (off_t)done, SEEK_SET) < 0 ||
                weft_file_seek(out, (off_t)done, SEEK_SET) < 0)
                rc = -EIO;
        }
    }
    size_t cap = size < COPY_CHUNK ? size : COPY_CHUNK;
    char *buf = cap && done < size ? malloc(cap) : NULL;
    if (cap && done < size && !buf)
        rc = -ENOMEM;
    /* Read what stat saw: asking for more would cost one more read, the
     * one that finds the end. */
    while (rc == 0 && done < size) {
        size_t want = size - done < cap ? size - done : cap;
        ssize_t n = weft_file_read(in, buf, want);
        if (n <= 0) {
            rc = (int)n; /* 0: it shrank meanwhile; what was there is copied */
            break;
        }
        ssize_t w = weft_file_write(out, buf, (size_t)n);
        if (w < 0)
            rc = (int)w;
        done += (size_t)n;
        count(e->c, 0, (size_t)n);
    }
    free(buf);
    /* The umask may have taken bits away, and a write clears set-id
     * bits: give them back (a quick metadata call, made in place). */
    if (rc == 0 && ((mode & ~e->c->umask) != mode || (mode & 06000)) &&
        fchmod(weft_file_fd(out), mode) < 0)
        rc = -errno;
    int r1 = weft_file_close(in), r2 = weft_file_close(out);
    return rc < 0 ? rc : r1 < 0 ? r1 : r2;
}

/* Symbolic links have no io_uring opcode to read them: the worker pool. */
static int copy_link_worker(void *arg)
{
    struct entry *e = arg;
    char target[4096];
    ssize_t n = readlink(e->src, target, sizeof target - 1);
    if (n < 0)
        return -errno;
    target[n] = '\0';
    return symlink(target, e->dst) < 0 ? -errno : 0;
}

static int copy_dir(struct entry *e, mode_t mode);

static void entry_free(struct entry *e)
{
    free(e->src);
    free(e->dst);
    free(e);
}

/* Copy a file or a link, on the calling task's core. */
static int copy_entry(struct entry *e)
{
    struct copy *c = e->c;
    int rc = 0;
    if (S_ISREG(e->mode))
        rc = copy_file(e, e->size, e->mode & 07777);
    else
        rc = weft_to_thread(copy_link_worker, e, NULL, 0);
    if (rc < 0 && rc != -ECANCELED)
        report(c, e->src, rc);
    if (rc == 0)
        count(c, 1, 0);
    return rc == -ECANCELED ? rc : 0;
}

/* One core: a file or link task, given a token of c->files on its
 * behalf. */
static int entry_task(void *arg)
{
    struct entry *e = arg;
    struct copy *c = e->c;
    int rc = copy_entry(e);
    weft_limiter_release_on_behalf_of(&c->files, e);
    entry_free(e);
    return rc;
}

/* Several cores: a copier, one of per_core on its core. It copies the
 * entries it takes from the channel until the channel ends. */
static int copier_task(void *arg)
{
    weft_chan_rx *rx = arg;
    void *item;
    int rc;
    while ((rc = weft_chan_recv(rx, &item)) == 1) {
        struct entry *e = item;
        rc = copy_entry(e);
        entry_free(e);
        if (rc < 0)
            return rc;
    }
    return rc == -ECANCELED ? rc : 0;
}

struct core_job {
    struct copy *c;
    weft_chan_rx *rx;
};

/* Several cores: what runs on each core, its copiers in a group. */
static int core_task(void *arg)
{
    struct core_job *cj = arg;
    weft_group g;
    weft_group_enter(&g);
    int rc = 0;
    for (unsigned i = 0; rc == 0 && i < cj->c->per_core; i++)
        rc = weft_group_spawn(&g, copier_task, cj->rx);
    return weft_group_exit(&g, rc);
}

/* A directory task: no token (it would hold it while it waits for its
 * entries, and the limiter could deadlock). */
static int dir_task(void *arg)
{
    struct entry *e = arg;
    int rc = copy_dir(e, e->mode & 07777);
    entry_free(e);
    return rc == -ECANCELED ? rc : 0;
}

struct lister {
    struct entry *dir;
    weft_group *g;
};

/* For each entry of a directory (with its lstat, from weft_path_scan):
 * a directory task, or a token and then a file task. */
static int spawn_entry(const char *name, const struct statx *st, void *arg)
{
    struct lister *l = arg;
    struct copy *c = l->dir->c;
    if (!S_ISDIR(st->stx_mode) && !S_ISREG(st->stx_mode) &&
        !S_ISLNK(st->stx_mode)) {
        fprintf(stderr,
                "\nweft-cp: %s/%s: not a file, directory or link: "
                "skipped\n",
                l->dir->src, name);
        return 0;
    }
    struct entry *e = calloc(1, sizeof *e);
    if (!e || !(e->src = join(l->dir->src, name)) ||
        !(e->dst = join(l->dir->dst, name))) {
        if (e)
            entry_free(e);
        return -ENOMEM;
    }
    e->c = c;
    e->mode = st->stx_mode;
    e->size = st->stx_size;
    int rc;
    if (S_ISDIR(e->mode)) {
        rc = weft_group_spawn(l->g, dir_task, e);
    } else if (c->tx) {
        rc = weft_chan_send(c->tx, e); /* the copiers own it once sent */
    } else if ((rc = weft_limiter_acquire_on_behalf_of(&c->files, e)) == 0) {
        rc = weft_group_spawn(l->g, entry_task, e);
        if (rc < 0)
            weft_limiter_release_on_behalf_of(&c->files, e);
    }
    if (rc < 0)
        entry_free(e);
    return rc;
}

static int copy_dir(struct entry *e, mode_t mode)
{
    struct copy *c = e->c;
    /* Owner rwx while it is being filled; its own mode at the end. */
    int rc = weft_path_mkdir(e->dst, mode | 0700);
    if (rc < 0 && rc != -EEXIST) {
        report(c, e->dst, rc);
        return rc;
    }
    weft_group g;
    struct lister l = {.dir = e, .g = &g};
    weft_group_enter(&g);
    rc = weft_path_scan(e->src, spawn_entry, &l);
    if (rc < 0 && rc != -ECANCELED)
        report(c, e->src, rc);
    rc = weft_group_exit(&g, rc == -ECANCELED ? rc : 0);
    if (c->tx) {
        /* Its files may still be on their way: its mode at the end. */
        size_t len = strlen(e->dst) + 1;
        struct dir_mode *d = malloc(sizeof *d + len);
        if (!d)
            return -ENOMEM;
        d->mode = mode;
        memcpy(d->path, e->dst, len);
        d->next = c->dirs;
        c->dirs = d;
    } else if (chmod(e->dst, mode) < 0) {
        report(c, e->dst, -errno);
    }
    return rc;
}

/* Several cores: the directories' modes, deepest first (a directory is
 * listed after its parent), and the list freed. */
static void set_dir_modes(struct copy *c)
{
    while (c->dirs) {
        struct dir_mode *d = c->dirs;
        c->dirs = d->next;
        if (chmod(d->path, d->mode) < 0)
            report(c, d->path, -errno);
        free(d);
    }
}

static void totals(const struct copy *c, unsigned long long *files,
                   unsigned long long *bytes)
{
    *files = *bytes = 0;
    for (unsigned i = 0; i < c->cores; i++) {
        *files +=
            atomic_load_explicit(&c->counts[i].files, memory_order_relaxed);
        *bytes +=
            atomic_load_explicit(&c->counts[i].bytes, memory_order_relaxed);
    }
}

/* On a terminal: "files, MiB" every 100 ms, rewritten with \r. */
static int progress_task(void *arg)
{
    struct copy *c = arg;
    unsigned long long files, bytes;
    while (!weft_event_is_set(&c->finished)) {
        totals(c, &files, &bytes);
        printf("\r%llu files, %.1f MiB", files, bytes / 1048576.0);
        fflush(stdout);
        weft_scope s;
        weft_move_on_after(&s, 100 * WEFT_MSEC);
        int rc = weft_scope_exit(&s, weft_event_wait(&c->finished));
        if (rc < 0)
            break;
    }
    totals(c, &files, &bytes);
    printf("\r%llu files, %.1f MiB\n", files, bytes / 1048576.0);
    return 0;
}

struct job {
    const char *src, *dst;
    unsigned cores, per_core;
    bool quiet;
};

static int copy_top(struct copy *c, const struct job *j)
{
    struct statx st;
    int rc = weft_path_stat(j->src, &st);
    if (rc < 0) {
        report(c, j->src, rc);
        return rc;
    }
    struct entry *e = calloc(1, sizeof *e);
    if (!e)
        return -ENOMEM;
    e->c = c;
    e->src = strdup(j->src);
    /* cp's rule: into an existing directory, under the source's name */
    struct statx dst;
    if (weft_path_stat(j->dst, &dst) == 0 && S_ISDIR(dst.stx_mode)) {
        char *tmp = strdup(j->src);
        e->dst = join(j->dst, basename(tmp));
        free(tmp);
    } else {
        e->dst = strdup(j->dst);
    }
    if (!e->src || !e->dst) {
        entry_free(e);
        return -ENOMEM;
    }
    if (S_ISDIR(st.stx_mode)) {
        rc = copy_dir(e, st.stx_mode & 07777);
    } else {
        rc = copy_file(e, st.stx_size, st.stx_mode & 07777);
        if (rc < 0)
            report(c, e->src, rc);
        else
            count(c, 1, 0);
    }
    entry_free(e);
    return rc;
}

/* Several cores: the copiers on every core, fed by the walk on this
 * one (core 0) through a shared channel. */
static int copy_cores(struct copy *c, const struct job *j)
{
    weft_chan_rx *rx;
    int rc =
        weft_chan_open_shared((size_t)4 * c->per_core * c->cores, &c->tx, &rx);
    if (rc < 0)
        return rc;
    struct core_job cj = {c, rx};
    weft_group g;
    weft_group_enter(&g);
    for (unsigned i = 0; rc == 0 && i < c->cores; i++)
        rc = weft_group_spawn_on(&g, i, core_task, &cj);
    if (rc == 0)
        rc = copy_top(c, j);
    /* The end of the stream: the copiers end once it is drained. */
    weft_chan_tx_close(c->tx);
    rc = weft_group_exit(&g, rc);
    weft_chan_rx_close(rx);
    set_dir_modes(c);
    return rc;
}

static int root(void *arg)
{
    const struct job *j = arg;
    struct copy c = {.cores = weft_core_count(), .per_core = j->per_core};
    c.counts = calloc(c.cores, sizeof *c.counts);
    if (!c.counts)
        return -ENOMEM;
    weft_limiter_init(&c.files, j->per_core);
    weft_event_init(&c.finished);
    c.umask = umask(0);
    umask(c.umask);
    weft_group g;
    weft_group_enter(&g);
    int rc = 0;
    if (!j->quiet && isatty(1))
        rc = weft_group_spawn(&g, progress_task, &c);
    if (rc == 0)
        rc = c.cores > 1 ? copy_cores(&c, j) : copy_top(&c, j);
    weft_event_set(&c.finished);
    rc = weft_group_exit(&g, rc);
    free(c.counts);
    return atomic_load(&c.failures) ? -EIO : rc;
}

/* The CPUs this process may run on: weft_run_cores puts one core on
 * each, and no more. */
static unsigned cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return 1;
    int n = CPU_COUNT(&set);
    return n > 0 ? (unsigned)n : 1;
}

int main(int argc, char **argv)
{
    struct job j = {.cores = 1, .per_core = 64};
    int opt;
    while ((opt = getopt(argc, argv, "j:n:q")) != -1) {
        if (opt == 'j' && atoi(optarg) >= 0)
            j.cores = (unsigned)atoi(optarg);
        else if (opt == 'n' && atoi(optarg) > 0)
            j.per_core = (unsigned)atoi(optarg);
        else if (opt == 'q')
            j.quiet = true;
        else
            goto usage;
    }
    if (argc - optind != 2)
        goto usage;
    j.src = argv[optind];
    j.dst = argv[optind + 1];
    unsigned n = cpus();
    if (j.cores == 0 || j.cores > n)
        j.cores = n;
    if (j.cores > MAX_CORES)
        j.cores = MAX_CORES;
    int rc = weft_run_cores(j.cores, root, &j, NULL);
    if (rc < 0 && rc != -EIO)
        fprintf(stderr, "weft-cp: %s\n", weft_strerror(rc));
    return rc < 0;
usage:
    fprintf(stderr, "usage: weft-cp [-j CORES] [-n FILES] [-q] SRC DST\n");
    return 2;
}
