/* SPDX-License-Identifier: MIT */
/*
 * shard.c - the keyspace sharded over the cores, and the hops between
 * them. Shard i is core i's: its keyspaces (one per database, made on
 * first use) are touched only by tasks of core i, one at a time, so a
 * command needs no lock. A connection lives on the core that accepted
 * it; a command for a key of another shard runs there as a task
 * (weft_core_call), in the connection's database (SELECT), and a command
 * over several keys (MGET, MSET, DEL, EXISTS) runs one task per shard
 * involved, all at once, children of one group (weft_group_spawn_on),
 * and gathers their results (MSET and DEL shielded: once begun, whole).
 *
 * Cancellation holds across the hop: a connection cancelled (the drain's
 * grace ran out) while its command runs on another core waits for that
 * task to end before it frees the request, and what the task gathered is
 * freed by the command either way.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kv.h"

struct kv_shard kv_shards[KV_MAX_CORES];
unsigned kv_nshards = 1;
_Atomic long kv_clients;
_Atomic unsigned long long kv_connections_total;
_Atomic unsigned long long kv_gathers_cancelled;

struct kv_keyspace *kv_db(struct kv_shard *sh, int db)
{
    if (!kv_db_used(sh, db))
        ks_init(&sh->db[db]);
    return &sh->db[db];
}

/* ---- one key: the command runs on its shard's core ---- */

struct hop {
    const struct kv_command *cmd;
    struct kv_ctx *ctx;
};

static int run_here(const struct kv_command *cmd, struct kv_ctx *ctx)
{
    ctx->ks = kv_db(&kv_shards[weft_core_id()], ctx->db);
    ctx->now = kv_now_ms();
    kv_count(&kv_shards[weft_core_id()].commands, 1);
    return cmd->fn(ctx);
}

static int hop_task(void *arg)
{
    struct hop *h = arg;
    return run_here(h->cmd, h->ctx);
}

int kv_execute(struct kv_conn *conn, struct kv_req *req, struct kv_out *out)
{
    if (req->argc == 0)
        return 0;
    const struct kv_command *cmd = kv_resolve(req, out);
    if (!cmd)
        return 0;
    struct kv_ctx ctx = {.conn = conn,
                         .argc = req->argc,
                         .argv = req->argv,
                         .out = out,
                         .db = conn->db};
    if (cmd->kind == KV_KEY) {
        unsigned shard = kv_shard_of(req->argv[1].p, req->argv[1].len);
        if (shard != weft_core_id()) {
            struct hop h = {cmd, &ctx};
            return weft_core_call(shard, hop_task, &h);
        }
    }
    return run_here(cmd, &ctx);
}

/* ---- several keys: one task per shard, gathered ---- */

struct part {
    struct kv_ctx *ctx;
    unsigned shard;
    int first, step;
    kv_each_fn each;
    void *res;
    long long sum;
};

/* On the shard's core: every key of the request that is this shard's. */
static int part_task(void *arg)
{
    struct part *p = arg;
    struct kv_ctx *c = p->ctx;
    struct kv_keyspace *ks = kv_db(&kv_shards[p->shard], c->db);
    for (int i = p->first; i < c->argc; i += p->step)
        if (kv_shard_of(c->argv[i].p, c->argv[i].len) == p->shard)
            p->sum += p->each(ks, c, i, p->res);
    return 0;
}

long long kv_gather(struct kv_ctx *c, int first, int step, kv_each_fn each,
                    void *res)
{
    unsigned n = kv_nshards, me = weft_core_id();
    if (n == 1) {
        struct part p = {c, 0, first, step, each, res, 0};
        part_task(&p);
        return p.sum;
    }
    if (weft_checkpoint_if_cancelled() < 0) /* cancelled already: no hop */
        return -ECANCELED;
    struct part *parts = calloc(n, sizeof *parts);
    if (!parts)
        return -ENOMEM;
    bool *used = calloc(n, sizeof *used);
    if (!used) {
        free(parts);
        return -ENOMEM;
    }
    for (int i = first; i < c->argc; i += step)
        used[kv_shard_of(c->argv[i].p, c->argv[i].len)] = true;
    weft_group g;
    weft_group_enter(&g);
    int rc = 0;
    for (unsigned s = 0; s < n && rc == 0; s++) {
        parts[s] = (struct part){c, s, first, step, each, res, 0};
        if (used[s] && s != me)
            rc = weft_group_spawn_on(&g, s, part_task, &parts[s]);
    }
    if (rc == 0 && used[me]) /* our own shard while the others run */
        part_task(&parts[me]);
    rc = weft_group_exit(&g, rc);
    /* The parts have no checkpoint: each ran whole, and the group's exit
     * waited for them even if the connection was cancelled meanwhile (the
     * drain's grace ran out mid-hop), then gave 0. Such a gather reports
     * the cancellation (its results are freed by the command), and is
     * counted. Under kv_gather_whole's shield no outer cancellation shows
     * here: a write runs on to its reply. */
    if (rc == 0 && weft_checkpoint_if_cancelled() < 0)
        rc = -ECANCELED;
    if (rc == -ECANCELED)
        atomic_fetch_add_explicit(&kv_gathers_cancelled, 1,
                                  memory_order_relaxed);
    long long sum = 0;
    for (unsigned s = 0; s < n; s++)
        sum += parts[s].sum;
    free(used);
    free(parts);
    return rc < 0 ? rc : sum;
}

long long kv_gather_whole(struct kv_ctx *c, int first, int step,
                          kv_each_fn each, void *res)
{
    weft_scope whole;
    weft_scope_enter(&whole, WEFT_FOREVER);
    weft_scope_set_shield(&whole, true);
    long long n = kv_gather(c, first, step, each, res);
    int rc = weft_scope_exit(&whole, n < 0 ? (int)n : 0);
    return rc < 0 ? rc : n;
}

struct every {
    long long (*fn)(struct kv_shard *sh, void *arg);
    void *arg;
    long long sum;
};

static int every_task(void *arg)
{
    struct every *e = arg;
    e->sum = e->fn(&kv_shards[weft_core_id()], e->arg);
    return 0;
}

long long kv_every_shard(long long (*fn)(struct kv_shard *sh, void *arg),
                         void *arg)
{
    unsigned n = kv_nshards;
    struct every *ev = calloc(n, sizeof *ev);
    if (!ev)
        return -ENOMEM;
    weft_group g;
    weft_group_enter(&g);
    int rc = 0;
    for (unsigned s = 0; s < n; s++) {
        ev[s] = (struct every){fn, arg, 0};
        if (s != weft_core_id() && rc == 0)
            rc = weft_group_spawn_on(&g, s, every_task, &ev[s]);
    }
    if (rc == 0)
        every_task(&ev[weft_core_id()]);
    rc = weft_group_exit(&g, rc);
    long long sum = 0;
    for (unsigned s = 0; s < n; s++)
        sum += ev[s].sum;
    free(ev);
    return rc < 0 ? rc : sum;
}
