/* SPDX-License-Identifier: MIT */
/*
 * shield.c - clean up under a shielded scope.
 *
 * A connection handler serves until its group is cancelled. Cancellation
 * is level-triggered: once cancelled, every checkpoint of the handler
 * returns -ECANCELED, so its cleanup, which must still wait (here: flush
 * the last bytes), runs inside a shielded scope with a deadline of its own.
 * It prints:
 *
 *     handler: cancelled; checkpoints keep failing: -125
 *     handler: flushed and closed
 *     group exit: 0
 *
 * Exits 0 when the cleanup ran to the end.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <weft.h>

struct conn {
    bool open;
    bool flushed;
};

/* Cleanup that has to wait: hidden from outer cancellation, but bounded. */
static int flush_and_close(struct conn *c)
{
    weft_scope cleanup;
    weft_move_on_after(&cleanup, 1 * WEFT_SEC); /* cleanup gets 1 s at most */
    weft_scope_set_shield(&cleanup, true);      /* outer cancels can't reach */
    int rc = weft_sleep(5 * WEFT_MSEC);         /* stands for the last send */
    if (rc == 0)
        c->flushed = true;
    rc = weft_scope_exit(&cleanup, rc);
    c->open = false;
    return rc;
}

static int handler(void *arg)
{
    struct conn *c = arg;
    c->open = true;
    int rc = weft_sleep_forever(); /* serve until cancelled: -ECANCELED */
    printf("handler: cancelled; checkpoints keep failing: %d\n",
           weft_checkpoint()); /* -ECANCELED again (level-triggered) */
    int crc = flush_and_close(c);
    if (c->flushed)
        printf("handler: flushed and closed\n");
    return crc < 0 ? crc : rc;
}

static int root(void *arg)
{
    struct conn c = {false, false};
    weft_group g;

    weft_group_enter(&g);
    int rc = weft_group_spawn_named(&g, "handler", handler, &c);
    if (rc == 0)
        rc = weft_sleep(10 * WEFT_MSEC); /* let it serve for a while */
    weft_group_cancel(&g);               /* then stop it */
    rc = weft_group_exit(&g, rc);        /* 0: the group caught its cancel */
    printf("group exit: %d\n", rc);

    if (rc == 0 && (!c.flushed || c.open))
        rc = -EPROTO;
    return rc;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "shield: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
