/* SPDX-License-Identifier: MIT */
/*
 * errors.c - two children fail; the group keeps every error.
 *
 * "worker" waits for work; "parse-config" and "open-database" fail before
 * their first checkpoint. The first failure cancels the group (so "worker"
 * gets -ECANCELED, which is not an error of its own), weft_group_exit
 * returns the first error, and every error is kept with its task's name:
 *
 *     group exit: -22 (Invalid argument)
 *     2 errors:
 *       parse-config: Invalid argument
 *       open-database: No such file or directory
 *
 * Exits 0 when the group reports exactly these errors.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

static int worker(void *arg)
{
    return weft_sleep_forever(); /* -ECANCELED once the group is cancelled */
}

static int parse_config(void *arg)
{
    return -EINVAL; /* a bad setting */
}

static int open_database(void *arg)
{
    return -ENOENT; /* no such file */
}

/* Print what a group kept after weft_group_exit (anyio's ExceptionGroup). */
static void print_errors(const weft_group *g)
{
    size_t n = weft_group_error_count(g);
    printf("%zu errors:\n", n);
    for (size_t i = 0; i < n; i++) {
        const char *name;
        int err = weft_group_error(g, i, &name);
        if (err == -ENOMEM) { /* counted, but there was no memory for it */
            printf("  (one more, not kept)\n");
            continue;
        }
        printf("  %s: %s\n", name, weft_strerror(err));
    }
}

/* What this program expects the group to report. */
static int check(const weft_group *g, int rc)
{
    const char *name;
    if (rc != -EINVAL || weft_group_error_count(g) != 2)
        return -EPROTO;
    if (weft_group_error(g, 0, &name) != -EINVAL ||
        strcmp(name, "parse-config") != 0)
        return -EPROTO;
    if (weft_group_error(g, 1, &name) != -ENOENT ||
        strcmp(name, "open-database") != 0)
        return -EPROTO;
    return 0;
}

static int root(void *arg)
{
    weft_group g;
    weft_group_enter(&g);
    int rc = weft_group_spawn_named(&g, "worker", worker, NULL);
    if (rc == 0)
        rc = weft_group_spawn_named(&g, "parse-config", parse_config, NULL);
    if (rc == 0)
        rc = weft_group_spawn_named(&g, "open-database", open_database, NULL);
    rc = weft_group_exit(&g, rc);

    printf("group exit: %d (%s)\n", rc, weft_strerror(rc));
    print_errors(&g);
    return check(&g, rc);
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "errors: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
