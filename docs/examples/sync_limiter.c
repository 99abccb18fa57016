/* SPDX-License-Identifier: MIT */
/*
 * sync_limiter.c - a CapacityLimiter bounding concurrent work.
 *
 * Ten "downloads" start at once, but the limiter lets three run at a
 * time; half-way the program raises the limit to five, which lets two
 * more waiters in at once. Each task is the borrower of its own token, so
 * a second acquire by the same task is -EDEADLK instead of a deadlock. A
 * token can also be borrowed on behalf of any object (here a job record).
 * It prints:
 *
 *     at most 3 at once, then 5
 *     a second acquire by the same task: -EDEADLK
 *     a job's token: borrowed 1, released 0
 *
 * Build: part of the docs' examples (example_sync_limiter); exits 0 on
 * success.
 */
#include <errno.h>
#include <stdio.h>
#include <weft.h>

struct state {
    weft_limiter limit;
    weft_event fifth; /* set when the fifth download starts */
    int running, most_before, most_after, started;
    int second_acquire;
};

static int download(void *arg)
{
    struct state *s = arg;
    int rc = weft_limiter_acquire(&s->limit);
    if (rc < 0)
        return rc;
    if (++s->started == 5)
        weft_event_set(&s->fifth);
    s->running++;
    int *most = s->started <= 5 ? &s->most_before : &s->most_after;
    if (s->running > *most)
        *most = s->running;
    s->second_acquire = weft_limiter_try_acquire(&s->limit);
    rc = weft_sleep(2 * WEFT_MSEC); /* the transfer */
    s->running--;
    weft_limiter_release(&s->limit);
    return rc;
}

static int root(void *arg)
{
    struct state s = {0};
    weft_group g;
    int rc = 0;

    weft_limiter_init(&s.limit, 3);
    weft_event_init(&s.fifth);
    weft_group_enter(&g);
    for (int i = 0; i < 10 && rc == 0; i++)
        rc = weft_group_spawn(&g, download, &s);
    if (rc == 0)
        rc = weft_event_wait(&s.fifth);
    if (rc == 0)
        rc = weft_limiter_set_total_tokens(&s.limit, 5); /* wakes waiters */
    rc = weft_group_exit(&g, rc);
    if (rc < 0)
        return rc;
    printf("at most %d at once, then %d\n", s.most_before, s.most_after);
    printf("a second acquire by the same task: %s\n",
           s.second_acquire == -EDEADLK ? "-EDEADLK" : "?");

    /* A token held for a job record rather than for a task. */
    struct job {
        int id;
    } job = {1};
    rc = weft_limiter_acquire_on_behalf_of(&s.limit, &job);
    unsigned during = weft_limiter_borrowed_tokens(&s.limit);
    if (rc == 0)
        rc = weft_limiter_release_on_behalf_of(&s.limit, &job);
    printf("a job's token: borrowed %u, released %u\n", during,
           weft_limiter_borrowed_tokens(&s.limit));
    if (rc < 0 || s.most_before != 3 || s.most_after != 5 || during != 1 ||
        s.second_acquire != -EDEADLK)
        return rc < 0 ? rc : -EPROTO;
    return 0;
}

int main(void)
{
    int rc = weft_run(root, NULL, NULL);
    if (rc < 0) {
        fprintf(stderr, "sync_limiter: %s\n", weft_strerror(rc));
        return 1;
    }
    return 0;
}
