/* SPDX-License-Identifier: MIT */
/*
 * sync_lock.c - a Lock around a read-modify-write that checkpoints.
 *
 * Five tasks each move money between two accounts 100 times. Each
 * transfer reads both balances, yields (as any real I/O would), then
 * writes them back: without the lock, the tasks would overwrite each
 * other's updates. With it, the total is the same at the end. It prints:
 *
 *     total before 1000, after 1000, 500 transfers
 *
 * Build: part of the docs' examples (example_sync_lock); exits 0 on
 * success.
 */
#include <errno.h>
#include <stdio.h>
#include <weft.h>

struct bank {
    weft_lock lock;
    int a, b;
    int transfers;
};

/* Move amount from a to b, with a checkpoint in the middle. */
static int transfer(struct bank *bk, int amount)
{
    int rc = weft_lock_acquire(&bk->lock);
    if (rc < 0)
        return rc; /* -ECANCELED: we do not hold the lock */
    int a = bk->a, b = bk->b;
    rc = weft_checkpoint(); /* other tasks run here */
    if (rc == 0) {
        bk->a = a - amount;
        bk->b = b + amount;
        bk->transfers++;
    }
    /* Acquired means ours, whatever happened since: always release. */
    weft_lock_release(&bk->lock);
    return rc;
}

static int teller(void *arg)
{
    struct bank *bk = arg;
    for (int i = 0; i < 100; i++) {
        int rc = transfer(bk, i % 2 ? 7 : -7);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int root(void *arg)
{
    struct bank bk = {.a = 600, .b = 400};
    weft_group g;
    int rc = 0;

    weft_lock_init(&bk.lock);
    int before = bk.a + bk.b;
    weft_group_enter(&g);
    for (int i = 0; i < 5 && rc == 0; i++)
        rc = weft_group_spawn(&g, teller, &bk);
    rc = weft_group_exit(&g, rc);
    if (rc < 0)
        return rc;
    printf("total before %d, after %d, %d transfers\n", before, bk.a + bk.b,
           bk.transfers);
    if (bk.a + bk.b != before || bk.transfers != 500 ||
        weft_lock_locked(&bk.lock))
        return -EPROTO;
    return 0;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "sync_lock: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
