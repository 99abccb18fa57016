/* SPDX-License-Identifier: MIT */
/*
 * sync_semaphore.c - a Semaphore as a pool of two connections.
 *
 * Six tasks need a connection; the semaphore's value is the number of free
 * ones, so at most two tasks use one at a time, and they get them in the
 * order they asked. A maximum catches a release without an acquire. It
 * prints:
 *
 *     order: 0 1 2 3 4 5, at most 2 at once
 *     an extra release: -EOVERFLOW
 *
 * Build: part of the docs' examples (example_sync_semaphore); exits 0 on
 * success.
 */
#include <errno.h>
#include <stdio.h>
#include <weft.h>

struct pool {
    weft_semaphore free_conns;
    int in_use, most;
    int order[6], n;
};

struct user {
    struct pool *p;
    int id;
};

static int user(void *arg)
{
    struct user *u = arg;
    struct pool *p = u->p;
    int rc = weft_semaphore_acquire(&p->free_conns);
    if (rc < 0)
        return rc;
    p->order[p->n++] = u->id;
    if (++p->in_use > p->most)
        p->most = p->in_use;
    rc = weft_sleep(WEFT_MSEC); /* use the connection */
    p->in_use--;
    weft_semaphore_release(&p->free_conns); /* always give it back */
    return rc;
}

static int root(void *arg)
{
    struct pool p = {0};
    struct user u[6];
    weft_group g;
    int rc = 0;

    weft_semaphore_init(&p.free_conns, 2, 2); /* two free, two at most */
    weft_group_enter(&g);
    for (int i = 0; i < 6 && rc == 0; i++) {
        u[i] = (struct user){&p, i};
        rc = weft_group_spawn(&g, user, &u[i]);
    }
    rc = weft_group_exit(&g, rc);
    if (rc < 0)
        return rc;
    printf("order:");
    for (int i = 0; i < p.n; i++)
        printf(" %d", p.order[i]);
    printf(", at most %d at once\n", p.most);

    rc = weft_semaphore_release(&p.free_conns);
    printf("an extra release: %s\n", rc == -EOVERFLOW ? "-EOVERFLOW" : "?");
    if (rc != -EOVERFLOW || p.most != 2 || p.n != 6 ||
        weft_semaphore_value(&p.free_conns) != 2)
        return -EPROTO;
    for (int i = 0; i < 6; i++)
        if (p.order[i] != i)
            return -EPROTO;
    return 0;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "sync_semaphore: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
