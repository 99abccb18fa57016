/* SPDX-License-Identifier: MIT */
/*
 * commands.c - the commands, with Redis 7.0's replies byte for byte
 * (t_string.c, expire.c, db.c, server.c): a table of name, arity, kind
 * and function, as Redis's command table. A command of kind KV_KEY runs
 * on the core of its key's shard with c->ks that shard's keyspace; a
 * KV_MULTI command gathers over shards with kv_gather; KV_LOCAL ones run
 * where the connection is.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kv.h"

/* ---- replies ---- */

void out_raw(struct kv_out *o, const void *p, size_t n)
{
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap : 4096;
        while (cap < o->len + n)
            cap *= 2;
        char *b = realloc(o->buf, cap);
        if (!b)
            abort();
        o->buf = b;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

/* "<type><v>\r\n": written by hand, not snprintf, which costs more than
 * the rest of a GET's reply (it is on every bulk and integer reply). */
static void out_line(struct kv_out *o, char type, long long v)
{
    char b[32];
    char *p = b + sizeof b;
    *--p = '\n';
    *--p = '\r';
    unsigned long long u =
        v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;
    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (v < 0)
        *--p = '-';
    *--p = type;
    out_raw(o, p, (size_t)(b + sizeof b - p));
}

void out_status(struct kv_out *o, const char *s)
{
    out_raw(o, "+", 1);
    out_raw(o, s, strlen(s));
    out_raw(o, "\r\n", 2);
}

void out_error(struct kv_out *o, const char *fmt, ...)
{
    char b[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof b)
        n = (int)sizeof b - 1;
    for (int i = 0; i < n; i++) /* an error is one line (Redis too) */
        if (b[i] == '\r' || b[i] == '\n')
            b[i] = ' ';
    out_raw(o, "-", 1);
    out_raw(o, b, (size_t)n);
    out_raw(o, "\r\n", 2);
}

void out_int(struct kv_out *o, long long v)
{
    out_line(o, ':', v);
}

void out_bulk(struct kv_out *o, const void *p, size_t n)
{
    out_line(o, '$', (long long)n);
    out_raw(o, p, n);
    out_raw(o, "\r\n", 2);
}

void out_nil(struct kv_out *o)
{
    out_raw(o, "$-1\r\n", 5);
}

void out_array(struct kv_out *o, long long n)
{
    out_line(o, '*', n);
}

void out_free(struct kv_out *o)
{
    free(o->buf);
    *o = (struct kv_out){0};
}

/* ---- helpers ---- */

static const char ERR_INT[] = "ERR value is not an integer or out of range";
static const char ERR_SYNTAX[] = "ERR syntax error";

static bool arg_is(const struct kv_arg *a, const char *s)
{
    size_t n = strlen(s);
    return a->len == n && strncasecmp(a->p, s, n) == 0;
}

static bool arg_ll(struct kv_ctx *c, int i, long long *v)
{
    if (kv_parse_ll(c->argv[i].p, c->argv[i].len, v))
        return true;
    out_error(c->out, "%s", ERR_INT);
    return false;
}

static void out_val(struct kv_out *o, const struct kv_entry *e)
{
    if (e)
        out_bulk(o, kv_val(e), e->vlen);
    else
        out_nil(o);
}

#define KEY(c, i) (c)->argv[i].p, (c)->argv[i].len

/* ---- connection and server ---- */

static int cmd_ping(struct kv_ctx *c)
{
    if (c->argc > 2) {
        out_error(c->out, "ERR wrong number of arguments for 'ping' command");
        return 0;
    }
    if (c->argc == 2)
        out_bulk(c->out, c->argv[1].p, c->argv[1].len);
    else
        out_status(c->out, "PONG");
    return 0;
}

static int cmd_echo(struct kv_ctx *c)
{
    out_bulk(c->out, c->argv[1].p, c->argv[1].len);
    return 0;
}

static int cmd_quit(struct kv_ctx *c)
{
    out_status(c->out, "OK");
    c->conn->close_after = true;
    return 0;
}

static int cmd_select(struct kv_ctx *c)
{
    long long id;
    if (!arg_ll(c, 1, &id))
        return 0;
    if (id < INT_MIN || id > INT_MAX) {
        out_error(c->out,
                  "ERR value is out of range, value must between %d "
                  "and %d",
                  INT_MIN, INT_MAX);
        return 0;
    }
    if (id < 0 || id >= KV_DBS) {
        out_error(c->out, "ERR DB index is out of range");
        return 0;
    }
    c->conn->db = (int)id; /* a KV_LOCAL command: on c->conn's core */
    out_status(c->out, "OK");
    return 0;
}

static long long count_keys(struct kv_shard *sh, void *arg)
{
    int db = *(const int *)arg;
    return kv_db_used(sh, db) ? (long long)sh->db[db].count : 0;
}

static int cmd_dbsize(struct kv_ctx *c)
{
    long long n = kv_every_shard(count_keys, &c->db);
    if (n < 0)
        return (int)n;
    out_int(c->out, n);
    return 0;
}

/* The databases to empty on a shard: one, or all (db -1). */
static long long flush_keys(struct kv_shard *sh, void *arg)
{
    int db = *(const int *)arg;
    for (int i = 0; i < KV_DBS; i++)
        if ((db < 0 || i == db) && kv_db_used(sh, i))
            ks_flush(&sh->db[i]);
    return 0;
}

/* FLUSHALL and FLUSHDB [ASYNC|SYNC]: both free at once (as Redis's SYNC;
 * ASYNC only changes when Redis frees the memory, not the reply). */
static int flush_generic(struct kv_ctx *c, int db)
{
    if (c->argc > 2 || (c->argc == 2 && !arg_is(&c->argv[1], "sync") &&
                        !arg_is(&c->argv[1], "async"))) {
        out_error(c->out, "%s", ERR_SYNTAX);
        return 0;
    }
    long long rc = kv_every_shard(flush_keys, &db);
    if (rc < 0)
        return (int)rc;
    out_status(c->out, "OK");
    return 0;
}

static int cmd_flushall(struct kv_ctx *c)
{
    return flush_generic(c, -1);
}

static int cmd_flushdb(struct kv_ctx *c)
{
    return flush_generic(c, c->db);
}

static int cmd_info(struct kv_ctx *c)
{
    char section[32] = "default";
    if (c->argc >= 2) {
        size_t n = c->argv[1].len < 31 ? c->argv[1].len : 31;
        memcpy(section, c->argv[1].p, n);
        section[n] = '\0';
    }
    struct kv_out text = {0};
    kv_info(&text, section);
    out_bulk(c->out, text.buf ? text.buf : "", text.len);
    out_free(&text);
    return 0;
}

/* CONFIG GET's parameters: what redis-benchmark (save, appendonly) and
 * clients ask, with weft-kv's values. */
enum { NPARAMS = 13 };
_Static_assert(KV_DBS == 16, "CONFIG GET databases says 16");

static void config_params(const char *p[NPARAMS][2], char num[5][24])
{
    snprintf(num[0], 24, "%ld", kv_cfg.maxclients);
    snprintf(num[1], 24, "%lld", (long long)(kv_cfg.idle_timeout / WEFT_SEC));
    snprintf(num[2], 24, "%lld", kv_cfg.limits.max_bulk);
    snprintf(num[3], 24, "%zu", kv_cfg.max_query);
    snprintf(num[4], 24, "%d", kv_cfg.port);
    const char *t[NPARAMS][2] = {
        {"save", ""}, /* no persistence: Redis's save "" */
        {"appendonly", "no"},
        {"databases", "16"}, /* KV_DBS */
        {"maxclients", num[0]},
        {"timeout", num[1]},
        {"proto-max-bulk-len", num[2]},
        {"client-query-buffer-limit", num[3]},
        {"maxmemory", "0"},
        {"maxmemory-policy", "noeviction"},
        {"io-threads", "1"},
        {"hz", "10"},
        {"bind", kv_cfg.bind},
        {"port", num[4]},
    };
    memcpy(p, t, sizeof t);
}

/* As Redis 7.0's configGetCommand: each argument is a glob pattern
 * (case-insensitive) or, with no [*? in it, a name, whose reply key is
 * the argument as written; a parameter is given once however many
 * arguments match it; an argument that matches nothing adds nothing.
 * (Redis replies in its dictionary's order, which varies from run to
 * run; weft-kv in the order the arguments first matched.) */
static int cmd_config_get(struct kv_ctx *c)
{
    const char *params[NPARAMS][2];
    char num[5][24];
    config_params(params, num);
    int order[NPARAMS], n = 0;
    struct kv_arg key[NPARAMS];
    bool hit[NPARAMS] = {0};
    for (int i = 2; i < c->argc; i++) {
        const struct kv_arg *a = &c->argv[i];
        char pat[128];
        size_t len = a->len < 127 ? a->len : 127;
        memcpy(pat, a->p, len);
        pat[len] = '\0';
        bool glob = strpbrk(pat, "[*?") != NULL;
        for (int j = 0; j < NPARAMS; j++) {
            if (hit[j] || (glob ? fnmatch(pat, params[j][0], FNM_CASEFOLD)
                                : !arg_is(a, params[j][0])))
                continue;
            hit[j] = true;
            key[n] =
                glob ? (struct kv_arg){params[j][0], strlen(params[j][0])} : *a;
            order[n++] = j;
        }
    }
    out_array(c->out, 2LL * n);
    for (int k = 0; k < n; k++) {
        out_bulk(c->out, key[k].p, key[k].len);
        out_bulk(c->out, params[order[k]][1], strlen(params[order[k]][1]));
    }
    return 0;
}

static int cmd_config_ok(struct kv_ctx *c)
{
    out_status(c->out, "OK");
    return 0;
}

static int cmd_client_setname(struct kv_ctx *c)
{
    const struct kv_arg *a = &c->argv[2];
    for (size_t i = 0; i < a->len; i++)
        if (a->p[i] < '!' || a->p[i] > '~') {
            out_error(c->out, "ERR Client names cannot contain spaces, "
                              "newlines or special characters.");
            return 0;
        }
    size_t n =
        a->len < sizeof c->conn->name - 1 ? a->len : sizeof c->conn->name - 1;
    memcpy(c->conn->name, a->p, n);
    c->conn->name[n] = '\0';
    out_status(c->out, "OK");
    return 0;
}

static int cmd_client_getname(struct kv_ctx *c)
{
    if (c->conn->name[0])
        out_bulk(c->out, c->conn->name, strlen(c->conn->name));
    else
        out_nil(c->out);
    return 0;
}

static int cmd_client_id(struct kv_ctx *c)
{
    out_int(c->out, (long long)c->conn->id);
    return 0;
}

/* COMMAND's replies are Redis's own for the commands weft-kv has
 * (command_docs.c): redis-cli 7 asks COMMAND DOCS when it starts and
 * gives hints and HELP from it. */
static bool is_top(const struct kv_command_doc *d)
{
    return strchr(d->name, '|') == NULL;
}

static const struct kv_command_doc *doc_of(const struct kv_arg *name)
{
    for (int i = 0; i < kv_command_ndocs; i++) {
        const struct kv_command_doc *d = &kv_command_docs[i];
        if (strlen(d->name) == name->len &&
            strncasecmp(d->name, name->p, name->len) == 0)
            return d;
    }
    return NULL;
}

static void out_text(struct kv_out *o, const char *resp)
{
    out_raw(o, resp, strlen(resp));
}

static void out_doc(struct kv_out *o, const struct kv_command_doc *d)
{
    out_bulk(o, d->name, strlen(d->name));
    out_text(o, d->docs);
}

/* COMMAND, and COMMAND INFO with no name: every command's entry. */
static int cmd_command(struct kv_ctx *c)
{
    out_array(c->out, kv_command_count());
    for (int i = 0; i < kv_command_ndocs; i++)
        if (is_top(&kv_command_docs[i]))
            out_text(c->out, kv_command_docs[i].info);
    return 0;
}

/* COMMAND INFO name...: an entry each, nil for a name not known. */
static int cmd_command_info(struct kv_ctx *c)
{
    if (c->argc == 2)
        return cmd_command(c);
    out_array(c->out, c->argc - 2);
    for (int i = 2; i < c->argc; i++) {
        const struct kv_command_doc *d = doc_of(&c->argv[i]);
        if (d)
            out_text(c->out, d->info);
        else
            out_nil(c->out);
    }
    return 0;
}

/* COMMAND DOCS [name...]: a map (a flat array in RESP2) of name to docs;
 * names not known are left out. */
static int cmd_command_docs(struct kv_ctx *c)
{
    if (c->argc == 2) {
        out_array(c->out, 2LL * kv_command_count());
        for (int i = 0; i < kv_command_ndocs; i++)
            if (is_top(&kv_command_docs[i]))
                out_doc(c->out, &kv_command_docs[i]);
        return 0;
    }
    long long n = 0;
    for (int i = 2; i < c->argc; i++)
        n += doc_of(&c->argv[i]) != NULL;
    out_array(c->out, 2 * n);
    for (int i = 2; i < c->argc; i++) {
        const struct kv_command_doc *d = doc_of(&c->argv[i]);
        if (d)
            out_doc(c->out, d);
    }
    return 0;
}

static int cmd_command_count(struct kv_ctx *c)
{
    out_int(c->out, kv_command_count());
    return 0;
}

/* ---- strings ---- */

static int cmd_get(struct kv_ctx *c)
{
    out_val(c->out, ks_get(c->ks, KEY(c, 1), c->now));
    return 0;
}

enum {
    SET_NX = 1,
    SET_XX = 2,
    SET_GET = 4,
    SET_KEEPTTL = 8,
    SET_EX = 16,
    SET_PX = 32,
    SET_EXAT = 64,
    SET_PXAT = 128,
};

/* SET's options as Redis parses them (parseExtendedStringArgumentsOrReply):
 * one of each kind, an expiry with its number; else a syntax error. */
static bool set_options(struct kv_ctx *c, unsigned *flags, int *expire_at)
{
    const unsigned ttl = SET_KEEPTTL | SET_EX | SET_PX | SET_EXAT | SET_PXAT;
    static const struct {
        const char *name;
        unsigned flag;
    } exp[] = {
        {"ex", SET_EX}, {"px", SET_PX}, {"exat", SET_EXAT}, {"pxat", SET_PXAT}};
    for (int j = 3; j < c->argc; j++) {
        const struct kv_arg *opt = &c->argv[j];
        bool next = j < c->argc - 1;
        if (arg_is(opt, "nx") && !(*flags & SET_XX)) {
            *flags |= SET_NX;
            continue;
        }
        if (arg_is(opt, "xx") && !(*flags & SET_NX)) {
            *flags |= SET_XX;
            continue;
        }
        if (arg_is(opt, "get")) {
            *flags |= SET_GET;
            continue;
        }
        if (arg_is(opt, "keepttl") && !(*flags & (ttl & ~SET_KEEPTTL))) {
            *flags |= SET_KEEPTTL;
            continue;
        }
        bool ok = false;
        for (size_t k = 0; k < 4 && !ok; k++)
            if (arg_is(opt, exp[k].name) && next &&
                !(*flags & (ttl & ~exp[k].flag))) {
                *flags |= exp[k].flag;
                *expire_at = ++j;
                ok = true;
            }
        if (!ok) {
            out_error(c->out, "%s", ERR_SYNTAX);
            return false;
        }
    }
    return true;
}

/* An expiry argument as an absolute time (getExpireMillisecondsOrReply). */
static bool expire_ms(struct kv_ctx *c, int i, unsigned flags, const char *cmd,
                      long long *when)
{
    long long ms;
    if (!arg_ll(c, i, &ms))
        return false;
    bool secs = flags & (SET_EX | SET_EXAT);
    bool bad = ms <= 0 || (secs && ms > LLONG_MAX / 1000);
    if (!bad) {
        if (secs)
            ms *= 1000;
        if (flags & (SET_EX | SET_PX)) {
            if (ms > LLONG_MAX - c->now)
                bad = true;
            else
                ms += c->now;
        }
    }
    if (bad || ms <= 0) {
        out_error(c->out, "ERR invalid expire time in '%s' command", cmd);
        return false;
    }
    *when = ms;
    return true;
}

static int cmd_set(struct kv_ctx *c)
{
    unsigned flags = 0;
    int at = 0;
    long long when = 0;
    if (!set_options(c, &flags, &at))
        return 0;
    if (at && !expire_ms(c, at, flags, "set", &when))
        return 0;
    /* Only NX, XX and GET need the old value: a plain SET looks the key
     * up once, in ks_put (which expires a stale one just as ks_get). */
    struct kv_entry *e = NULL;
    if (flags & (SET_NX | SET_XX | SET_GET))
        e = ks_get(c->ks, KEY(c, 1), c->now);
    if (flags & SET_GET)
        out_val(c->out, e);
    if (((flags & SET_NX) && e) || ((flags & SET_XX) && !e)) {
        if (!(flags & SET_GET))
            out_nil(c->out);
        return 0;
    }
    e = ks_put(c->ks, KEY(c, 1), c->argv[2].p, c->argv[2].len, c->now,
               flags & SET_KEEPTTL);
    if (when)
        ks_set_expire(c->ks, e, when);
    if (!(flags & SET_GET))
        out_status(c->out, "OK");
    return 0;
}

static int cmd_getset(struct kv_ctx *c)
{
    out_val(c->out, ks_get(c->ks, KEY(c, 1), c->now));
    ks_put(c->ks, KEY(c, 1), c->argv[2].p, c->argv[2].len, c->now, false);
    return 0;
}

static int cmd_setnx(struct kv_ctx *c)
{
    if (ks_get(c->ks, KEY(c, 1), c->now)) {
        out_int(c->out, 0);
        return 0;
    }
    ks_put(c->ks, KEY(c, 1), c->argv[2].p, c->argv[2].len, c->now, false);
    out_int(c->out, 1);
    return 0;
}

static int incr_by(struct kv_ctx *c, long long incr)
{
    long long v = 0;
    struct kv_entry *e = ks_get(c->ks, KEY(c, 1), c->now);
    if (e && !kv_parse_ll(kv_val(e), e->vlen, &v)) {
        out_error(c->out, "%s", ERR_INT);
        return 0;
    }
    if ((incr < 0 && v < 0 && incr < LLONG_MIN - v) ||
        (incr > 0 && v > 0 && incr > LLONG_MAX - v)) {
        out_error(c->out, "ERR increment or decrement would overflow");
        return 0;
    }
    v += incr;
    char b[24];
    int n = snprintf(b, sizeof b, "%lld", v);
    ks_put(c->ks, KEY(c, 1), b, (size_t)n, c->now, true);
    out_int(c->out, v);
    return 0;
}

static int cmd_incr(struct kv_ctx *c)
{
    return incr_by(c, 1);
}

static int cmd_decr(struct kv_ctx *c)
{
    return incr_by(c, -1);
}

static int cmd_incrby(struct kv_ctx *c)
{
    long long n;
    return arg_ll(c, 2, &n) ? incr_by(c, n) : 0;
}

static int cmd_decrby(struct kv_ctx *c)
{
    long long n;
    if (!arg_ll(c, 2, &n))
        return 0;
    if (n == LLONG_MIN) {
        out_error(c->out, "ERR decrement would overflow");
        return 0;
    }
    return incr_by(c, -n);
}

static int cmd_append(struct kv_ctx *c)
{
    struct kv_entry *e = ks_get(c->ks, KEY(c, 1), c->now);
    if (e && (long long)e->vlen + (long long)c->argv[2].len >
                 kv_cfg.limits.max_bulk) {
        out_error(c->out, "ERR string exceeds maximum allowed size "
                          "(proto-max-bulk-len)");
        return 0;
    }
    e = ks_append(c->ks, KEY(c, 1), c->argv[2].p, c->argv[2].len, c->now);
    out_int(c->out, e->vlen);
    return 0;
}

static int cmd_strlen(struct kv_ctx *c)
{
    struct kv_entry *e = ks_get(c->ks, KEY(c, 1), c->now);
    out_int(c->out, e ? e->vlen : 0);
    return 0;
}

/* ---- keys of several shards ---- */

struct got {
    char *p; /* a copy: the value may change once its core runs on */
    size_t n;
    bool found;
};

static long long mget_one(struct kv_keyspace *ks, struct kv_ctx *c, int i,
                          void *res)
{
    struct got *g = (struct got *)res + i;
    struct kv_entry *e = ks_get(ks, KEY(c, i), kv_now_ms());
    if (e) {
        g->p = malloc(e->vlen ? e->vlen : 1);
        if (!g->p)
            abort();
        memcpy(g->p, kv_val(e), e->vlen);
        g->n = e->vlen;
        g->found = true;
    }
    return 0;
}

static int cmd_mget(struct kv_ctx *c)
{
    struct got *g = calloc((size_t)c->argc, sizeof *g);
    if (!g)
        abort();
    long long rc = kv_gather(c, 1, 1, mget_one, g);
    if (rc >= 0) {
        out_array(c->out, c->argc - 1);
        for (int i = 1; i < c->argc; i++) {
            if (g[i].found)
                out_bulk(c->out, g[i].p, g[i].n);
            else
                out_nil(c->out);
        }
    }
    for (int i = 1; i < c->argc; i++) /* also when cancelled: no leak */
        free(g[i].p);
    free(g);
    return rc < 0 ? (int)rc : 0;
}

static long long mset_one(struct kv_keyspace *ks, struct kv_ctx *c, int i,
                          void *res)
{
    (void)res;
    ks_put(ks, KEY(c, i), c->argv[i + 1].p, c->argv[i + 1].len, kv_now_ms(),
           false);
    return 0;
}

static int cmd_mset(struct kv_ctx *c)
{
    if (c->argc % 2 == 0) {
        out_error(c->out, "ERR wrong number of arguments for 'mset' command");
        return 0;
    }
    long long rc = kv_gather_whole(c, 1, 2, mset_one, NULL);
    if (rc < 0)
        return (int)rc;
    out_status(c->out, "OK");
    return 0;
}

static long long del_one(struct kv_keyspace *ks, struct kv_ctx *c, int i,
                         void *res)
{
    (void)res;
    return ks_del(ks, KEY(c, i), kv_now_ms());
}

static long long exists_one(struct kv_keyspace *ks, struct kv_ctx *c, int i,
                            void *res)
{
    (void)res;
    return ks_get(ks, KEY(c, i), kv_now_ms()) != NULL;
}

static int cmd_del(struct kv_ctx *c)
{
    long long n = kv_gather_whole(c, 1, 1, del_one, NULL);
    if (n < 0)
        return (int)n;
    out_int(c->out, n);
    return 0;
}

static int cmd_exists(struct kv_ctx *c)
{
    long long n = kv_gather(c, 1, 1, exists_one, NULL);
    if (n < 0)
        return (int)n;
    out_int(c->out, n);
    return 0;
}

/* ---- expiry ---- */

enum { EXP_NX = 1, EXP_XX = 2, EXP_GT = 4, EXP_LT = 8 };

static bool expire_flags(struct kv_ctx *c, unsigned *flags)
{
    static const char *names[] = {"nx", "xx", "gt", "lt"};
    for (int j = 3; j < c->argc; j++) {
        unsigned f = 0;
        for (unsigned k = 0; k < 4; k++)
            if (arg_is(&c->argv[j], names[k]))
                f = 1u << k;
        if (!f) {
            int n = (int)strnlen(c->argv[j].p, c->argv[j].len);
            out_error(c->out, "ERR Unsupported option %.*s", n, c->argv[j].p);
            return false;
        }
        *flags |= f;
    }
    if ((*flags & EXP_NX) && (*flags & (EXP_XX | EXP_GT | EXP_LT))) {
        out_error(c->out, "ERR NX and XX, GT or LT options at the same time "
                          "are not compatible");
        return false;
    }
    if ((*flags & EXP_GT) && (*flags & EXP_LT)) {
        out_error(c->out, "ERR GT and LT options at the same time are not "
                          "compatible");
        return false;
    }
    return true;
}

/* expireGenericCommand, relative times */
static int expire_generic(struct kv_ctx *c, bool secs, const char *name)
{
    unsigned flags = 0;
    long long when;
    if (!expire_flags(c, &flags) || !arg_ll(c, 2, &when))
        return 0;
    bool bad = false;
    if (secs) {
        if (when > LLONG_MAX / 1000 || when < LLONG_MIN / 1000)
            bad = true;
        else
            when *= 1000;
    }
    if (bad || when > LLONG_MAX - c->now) {
        out_error(c->out, "ERR invalid expire time in '%s' command", name);
        return 0;
    }
    when += c->now;
    struct kv_entry *e = ks_get(c->ks, KEY(c, 1), c->now);
    if (!e) {
        out_int(c->out, 0);
        return 0;
    }
    long long cur = e->expire ? e->expire : -1;
    if (((flags & EXP_NX) && cur != -1) || ((flags & EXP_XX) && cur == -1) ||
        ((flags & EXP_GT) && (when <= cur || cur == -1)) ||
        ((flags & EXP_LT) && cur != -1 && when >= cur)) {
        out_int(c->out, 0);
        return 0;
    }
    if (when <= c->now)
        ks_del(c->ks, KEY(c, 1), c->now);
    else
        ks_set_expire(c->ks, e, when);
    out_int(c->out, 1);
    return 0;
}

static int cmd_expire(struct kv_ctx *c)
{
    return expire_generic(c, true, "expire");
}

static int cmd_pexpire(struct kv_ctx *c)
{
    return expire_generic(c, false, "pexpire");
}

static int ttl_generic(struct kv_ctx *c, bool ms)
{
    struct kv_entry *e = ks_get(c->ks, KEY(c, 1), c->now);
    if (!e) {
        out_int(c->out, -2);
        return 0;
    }
    if (!e->expire) {
        out_int(c->out, -1);
        return 0;
    }
    long long ttl = e->expire - c->now;
    if (ttl < 0)
        ttl = 0;
    out_int(c->out, ms ? ttl : (ttl + 500) / 1000);
    return 0;
}

static int cmd_ttl(struct kv_ctx *c)
{
    return ttl_generic(c, false);
}

static int cmd_pttl(struct kv_ctx *c)
{
    return ttl_generic(c, true);
}

static int cmd_persist(struct kv_ctx *c)
{
    struct kv_entry *e = ks_get(c->ks, KEY(c, 1), c->now);
    if (!e || !e->expire) {
        out_int(c->out, 0);
        return 0;
    }
    ks_persist(c->ks, e);
    out_int(c->out, 1);
    return 0;
}

/* ---- the table ---- */

static const struct kv_command commands[] = {
    {"ping", -1, KV_LOCAL, cmd_ping},
    {"echo", 2, KV_LOCAL, cmd_echo},
    {"quit", -1, KV_LOCAL, cmd_quit},
    {"select", 2, KV_LOCAL, cmd_select},
    {"dbsize", 1, KV_LOCAL, cmd_dbsize},
    {"flushall", -1, KV_LOCAL, cmd_flushall},
    {"flushdb", -1, KV_LOCAL, cmd_flushdb},
    {"info", -1, KV_LOCAL, cmd_info},
    {"get", 2, KV_KEY, cmd_get},
    {"set", -3, KV_KEY, cmd_set},
    {"getset", 3, KV_KEY, cmd_getset},
    {"setnx", 3, KV_KEY, cmd_setnx},
    {"incr", 2, KV_KEY, cmd_incr},
    {"decr", 2, KV_KEY, cmd_decr},
    {"incrby", 3, KV_KEY, cmd_incrby},
    {"decrby", 3, KV_KEY, cmd_decrby},
    {"append", 3, KV_KEY, cmd_append},
    {"strlen", 2, KV_KEY, cmd_strlen},
    {"mget", -2, KV_MULTI, cmd_mget},
    {"mset", -3, KV_MULTI, cmd_mset},
    {"del", -2, KV_MULTI, cmd_del},
    {"exists", -2, KV_MULTI, cmd_exists},
    {"expire", -3, KV_KEY, cmd_expire},
    {"pexpire", -3, KV_KEY, cmd_pexpire},
    {"ttl", 2, KV_KEY, cmd_ttl},
    {"pttl", 2, KV_KEY, cmd_pttl},
    {"persist", 2, KV_KEY, cmd_persist},
    /* containers: the entry's own arity applies with no subcommand */
    {"config", -2, KV_LOCAL, NULL},
    {"client", -2, KV_LOCAL, NULL},
    {"command", -1, KV_LOCAL, cmd_command},
};

/* Subcommands: "container|name", as Redis's fullname. */
static const struct kv_command subcommands[] = {
    {"config|get", -3, KV_LOCAL, cmd_config_get},
    {"config|resetstat", 2, KV_LOCAL, cmd_config_ok},
    {"client|setname", 3, KV_LOCAL, cmd_client_setname},
    {"client|getname", 2, KV_LOCAL, cmd_client_getname},
    {"client|id", 2, KV_LOCAL, cmd_client_id},
    {"command|docs", -2, KV_LOCAL, cmd_command_docs},
    {"command|info", -2, KV_LOCAL, cmd_command_info},
    {"command|count", 2, KV_LOCAL, cmd_command_count},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

int kv_command_count(void)
{
    return (int)COUNT(commands);
}

/* The subcommand "prefix|name" of t (CONFIG GET is "config|get"). */
static const struct kv_command *find_sub(const struct kv_command *t, size_t n,
                                         const struct kv_arg *name,
                                         const char *prefix)
{
    size_t pl = strlen(prefix) + 1;
    /* Names are lower case ASCII: a first letter that differs rules an
     * entry out before any string call. */
    int first = name->len ? tolower((unsigned char)name->p[0]) : -1;
    for (size_t i = 0; i < n; i++) {
        const char *full = t[i].name;
        if (strncmp(full, prefix, pl - 1) != 0 || full[pl - 1] != '|')
            continue;
        if (full[pl] != first)
            continue;
        if (strlen(full) - pl == name->len &&
            strncasecmp(full + pl, name->p, name->len) == 0)
            return &t[i];
    }
    return NULL;
}

/* The top-level commands by a hash of their name (its length and its
 * first and last letters, case folded), chained: a request's command is
 * found in one or two compares instead of a walk of the table. Built
 * once, before any lookup. */
#define NAME_BUCKETS 128
static short name_head[NAME_BUCKETS], name_next[COUNT(commands)];
static unsigned char name_len[COUNT(commands)];
static pthread_once_t name_once = PTHREAD_ONCE_INIT;

static unsigned name_hash(const char *p, size_t n)
{
    unsigned f = (unsigned)tolower((unsigned char)p[0]);
    unsigned l = (unsigned)tolower((unsigned char)p[n - 1]);
    return ((unsigned)n * 31u + f * 7u + l) % NAME_BUCKETS;
}

static void name_index(void)
{
    for (size_t b = 0; b < NAME_BUCKETS; b++)
        name_head[b] = -1;
    for (size_t i = COUNT(commands); i-- > 0;) {
        size_t n = strlen(commands[i].name);
        unsigned b = name_hash(commands[i].name, n);
        name_len[i] = (unsigned char)n;
        name_next[i] = name_head[b];
        name_head[b] = (short)i;
    }
}

static const struct kv_command *find_top(const struct kv_arg *name)
{
    pthread_once(&name_once, name_index);
    if (name->len == 0 || name->len > UCHAR_MAX)
        return NULL;
    for (int i = name_head[name_hash(name->p, name->len)]; i >= 0;
         i = name_next[i])
        if (name_len[i] == name->len &&
            strncasecmp(commands[i].name, name->p, name->len) == 0)
            return &commands[i];
    return NULL;
}

static bool arity_ok(const struct kv_command *cmd, int argc)
{
    return cmd->arity > 0 ? argc == cmd->arity : argc >= -cmd->arity;
}

static void unknown(const struct kv_req *req, struct kv_out *out)
{
    char args[256];
    size_t len = 0;
    args[0] = '\0';
    for (int i = 1; i < req->argc && len < 128; i++) {
        const struct kv_arg *a = &req->argv[i];
        int n = (int)strnlen(a->p, a->len);
        if (n > 128 - (int)len)
            n = 128 - (int)len;
        len +=
            (size_t)snprintf(args + len, sizeof args - len, "'%.*s' ", n, a->p);
    }
    const struct kv_arg *c = &req->argv[0];
    int n = (int)strnlen(c->p, c->len);
    out_error(out, "ERR unknown command '%.*s', with args beginning with: %s",
              n > 128 ? 128 : n, c->p, args);
}

const struct kv_command *kv_resolve(const struct kv_req *req,
                                    struct kv_out *out)
{
    const struct kv_command *cmd = find_top(&req->argv[0]);
    if (!cmd) {
        unknown(req, out);
        return NULL;
    }
    bool container = !cmd->fn || cmd->fn == cmd_command;
    if (container && req->argc >= 2) {
        const struct kv_command *sub =
            find_sub(subcommands, COUNT(subcommands), &req->argv[1], cmd->name);
        if (!sub) {
            char up[16];
            size_t i = 0;
            for (; cmd->name[i] && i < sizeof up - 1; i++)
                up[i] = (char)toupper((unsigned char)cmd->name[i]);
            up[i] = '\0';
            const struct kv_arg *a = &req->argv[1];
            int n = (int)strnlen(a->p, a->len);
            out_error(out, "ERR unknown subcommand '%.*s'. Try %s HELP.",
                      n > 128 ? 128 : n, a->p, up);
            return NULL;
        }
        cmd = sub;
    }
    if (!arity_ok(cmd, req->argc)) {
        out_error(out, "ERR wrong number of arguments for '%s' command",
                  cmd->name);
        return NULL;
    }
    return cmd;
}
