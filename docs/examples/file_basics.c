/* SPDX-License-Identifier: MIT */
/*
 * file_basics.c - files and paths: open, write, seek, read, stat; whole
 * files with read_all/write_all; directories; a file as a byte stream;
 * and a read that a deadline cancels.
 *
 * Works in a fresh directory under $TMPDIR (or /tmp), removes it at the
 * end, and prints:
 *
 *     read back: world
 *     size 12, position 12
 *     config: colour=blue
 *     3 entries in the directory
 *     line: one
 *     line: two
 *     the FIFO read was cancelled after 20 ms
 *
 * Exits 0 when each step ends as shown.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <weft.h>

static char dir[256];

static const char *in_dir(const char *name)
{
    static char bufs[4][512];
    static int next;
    char *b = bufs[next++ % 4];
    snprintf(b, sizeof bufs[0], "%s/%s", dir, name);
    return b;
}

/* 1. A file with a position: write, seek, read, stat. */
static int positions(void)
{
    weft_file *f;
    char buf[16] = {0};
    int rc = weft_file_open(&f, in_dir("notes.txt"), O_RDWR | O_CREAT | O_TRUNC,
                            0644);
    if (rc < 0)
        return rc;
    ssize_t n = weft_file_write(f, "hello world\n", 12); /* all 12, or -errno */
    if (n == 12)
        n = weft_file_seek(f, 6, SEEK_SET); /* 6 */
    if (n == 6)
        n = weft_file_read(f, buf, 5); /* 5: "world" */
    if (n == 5)
        printf("read back: %s\n", buf);
    struct statx st;
    if (n == 5 && (rc = weft_file_stat(f, &st)) == 0) {
        off_t end = weft_file_seek(f, 0, SEEK_END); /* from statx */
        printf("size %llu, position %lld\n", (unsigned long long)st.stx_size,
               (long long)end);
    }
    int crc = weft_file_close(f); /* always frees f */
    return n < 0 ? (int)n : rc < 0 ? rc : crc;
}

/* 2. Whole files. */
static int whole_files(void)
{
    int rc = weft_path_write_all(in_dir("app.conf"), "colour=blue", 11);
    if (rc < 0)
        return rc;
    void *data;
    ssize_t n = weft_path_read_all(in_dir("app.conf"), &data);
    if (n < 0)
        return (int)n;
    printf("config: %s\n", (char *)data); /* NUL-terminated for you */
    free(data);
    return 0;
}

/* 3. Directories: make, list, rename, remove. */
static int count_entry(const char *name, void *arg)
{
    (void)name;
    ++*(int *)arg;
    return 0; /* non-zero would stop the listing and be returned */
}

static int directories(void)
{
    int rc = weft_path_mkdir(in_dir("sub"), 0755);
    if (rc < 0)
        return rc;
    int count = 0;
    rc = weft_path_list(dir, count_entry, &count); /* skips . and .. */
    if (rc < 0)
        return rc;
    printf("%d entries in the directory\n", count);
    rc = weft_path_rename(in_dir("sub"), in_dir("sub2"));
    if (rc == 0)
        rc = weft_path_rmdir(in_dir("sub2"));
    if (rc == 0 && weft_path_exists(in_dir("sub2")) != 0)
        rc = -EEXIST;
    return rc;
}

/* 4. A file as a byte stream: the stream calls work on it. */
static int lines(void)
{
    int rc = weft_path_write_all(in_dir("lines"), "one\ntwo\n", 8);
    weft_file *f;
    if (rc == 0)
        rc = weft_file_open(&f, in_dir("lines"), O_RDONLY, 0);
    if (rc < 0)
        return rc;
    weft_stream *s = weft_file_stream(f); /* owns f from now on */
    if (!s) {
        weft_file_close(f);
        return -ENOMEM;
    }
    char line[64];
    size_t max = sizeof line - 1; /* room for a NUL */
    ssize_t n;
    /* one line per call; -ENODATA: the file ended (after the last \n) */
    while ((n = weft_stream_recv_until(s, line, max, "\n", 1)) >= 0) {
        line[n] = '\0';
        printf("line: %s\n", line);
    }
    weft_stream_close(s); /* closes the file */
    return n == -ENODATA ? 0 : (int)n;
}

/* 5. A read that waits (a FIFO no one writes to), under a deadline. */
static int cancelled_read(void)
{
    if (mkfifo(in_dir("fifo"), 0600) < 0)
        return -errno;
    weft_file *f;
    int rc = weft_file_open(&f, in_dir("fifo"), O_RDWR, 0); /* no wait */
    if (rc < 0)
        return rc;
    char buf[16];
    weft_scope s;
    weft_move_on_after(&s, 20 * WEFT_MSEC);
    ssize_t n = weft_file_read(f, buf, sizeof buf); /* -ECANCELED at 20 ms */
    rc = weft_scope_exit(&s, (int)n);               /* caught: 0 */
    if (rc == 0 && weft_scope_cancelled_caught(&s))
        printf("the FIFO read was cancelled after 20 ms\n");
    weft_file_close(f);
    return rc;
}

static int cleanup(const char *name, void *arg)
{
    (void)arg;
    return weft_path_unlink(in_dir(name));
}

static int root(void *arg)
{
    (void)arg;
    int rc = positions();
    if (rc == 0)
        rc = whole_files();
    if (rc == 0)
        rc = directories();
    if (rc == 0)
        rc = lines();
    if (rc == 0)
        rc = cancelled_read();
    int crc = weft_path_list(dir, cleanup, NULL);
    if (crc == 0)
        crc = weft_path_rmdir(dir);
    return rc < 0 ? rc : crc;
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/file_basics.XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "file_basics: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
