/* SPDX-License-Identifier: MIT */
/*
 * file_many.c - many files at once, with bounded concurrency: write
 * 1000 small files, then read them all back and add up their bytes, at
 * most 64 files open at a time (a weft_limiter), one task per file.
 *
 * The loop keeps every operation of the 64 tasks in the ring at once and
 * submits them together: one system call for many opens, reads or
 * writes. Prints:
 *
 *     wrote 1000 files
 *     read 1000 files, 2597500 bytes, sum 2597500
 *
 * and exits 0 when the sums match.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft.h>

#define NFILES 1000
#define AT_ONCE 64

static char dir[256];

struct batch {
    weft_limiter limit; /* tokens: files in flight */
    unsigned long long bytes, sum;
    int files;
};

struct one {
    struct batch *b;
    int i;
};

static void name_of(int i, char *out, size_t n)
{
    snprintf(out, n, "%s/f%04d", dir, i);
}

/* One file: its task holds a token (taken for it by the spawner) and
 * gives it back when done. */
static int write_one(void *arg)
{
    struct one *o = arg;
    char path[512], data[5200];
    name_of(o->i, path, sizeof path);
    size_t n = 100 + (size_t)o->i * 5; /* 100 .. 5095 bytes */
    memset(data, 1, n);
    int rc = weft_path_write_all(path, data, n);
    weft_limiter_release_on_behalf_of(&o->b->limit, o);
    if (rc == 0)
        o->b->files++;
    free(o);
    return rc;
}

static int read_one(void *arg)
{
    struct one *o = arg;
    char path[512];
    name_of(o->i, path, sizeof path);
    unsigned char *data;
    ssize_t n = weft_path_read_all(path, (void **)&data);
    if (n >= 0) {
        for (ssize_t k = 0; k < n; k++)
            o->b->sum += data[k];
        o->b->bytes += (unsigned long long)n;
        o->b->files++;
        free(data);
        n = weft_path_unlink(path);
    }
    weft_limiter_release_on_behalf_of(&o->b->limit, o);
    free(o);
    return (int)n;
}

/* Spawn fn for every file, never more than AT_ONCE at a time: the
 * spawner waits for a token before it spawns. */
static int for_each_file(struct batch *b, weft_fn fn)
{
    weft_group g;
    int rc = 0;
    weft_group_enter(&g);
    for (int i = 0; i < NFILES && rc == 0; i++) {
        struct one *o = malloc(sizeof *o);
        if (!o) {
            rc = -ENOMEM;
            break;
        }
        *o = (struct one){b, i};
        rc = weft_limiter_acquire_on_behalf_of(&b->limit, o);
        if (rc == 0 && (rc = weft_group_spawn(&g, fn, o)) < 0)
            weft_limiter_release_on_behalf_of(&b->limit, o);
        if (rc < 0)
            free(o);
    }
    return weft_group_exit(&g, rc); /* waits for every file's task */
}

static int root(void *arg)
{
    (void)arg;
    struct batch b = {0};
    weft_limiter_init(&b.limit, AT_ONCE);
    int rc = for_each_file(&b, write_one);
    if (rc < 0)
        return rc;
    printf("wrote %d files\n", b.files);
    b.files = 0;
    rc = for_each_file(&b, read_one);
    if (rc < 0)
        return rc;
    printf("read %d files, %llu bytes, sum %llu\n", b.files, b.bytes, b.sum);
    rc = weft_path_rmdir(dir);
    /* 100 + 5i bytes of 1 for i < 1000 */
    return rc < 0 ? rc : b.sum == 2597500 && b.files == NFILES ? 0 : -EIO;
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/file_many.XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "file_many: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
