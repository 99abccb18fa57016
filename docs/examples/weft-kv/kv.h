/* SPDX-License-Identifier: MIT */
/*
 * kv.h - what weft-kv's files share: the request parser (resp.c), the
 * keyspace of one shard (keyspace.c), the commands (commands.c), the
 * shards and the hops between cores (shard.c), and the server (server.c).
 *
 * The model is Dragonfly's shared-nothing one: one keyspace per core, each
 * touched only by tasks of its own core (so no locks: a loop runs one task
 * at a time), a connection served on the core that accepted it, and a
 * command for a key of another core run there with weft_core_call.
 */
#ifndef WEFT_KV_H
#define WEFT_KV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <weft.h>

#define KV_MAX_CORES 256
#define KV_DBS 16 /* databases, as Redis's default (SELECT 0 .. 15) */

/* ---- replies (commands.c) ---- */

/* A growing output buffer: the replies of one batch of requests. */
struct kv_out {
    char *buf;
    size_t len, cap;
};

void out_raw(struct kv_out *o, const void *p, size_t n);
void out_status(struct kv_out *o, const char *s); /* +s */
void out_error(struct kv_out *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));   /* -..., \r\n made spaces */
void out_int(struct kv_out *o, long long v); /* :v */
void out_bulk(struct kv_out *o, const void *p, size_t n);
void out_nil(struct kv_out *o);                /* $-1 */
void out_array(struct kv_out *o, long long n); /* *n */
void out_free(struct kv_out *o);

/* ---- requests (resp.c) ---- */

struct kv_arg {
    const char *p;
    size_t len;
};

/* One parsed request: argv points into the input buffer (multibulk) or
 * into scratch (inline requests, unquoted). */
struct kv_req {
    int argc, cap;
    struct kv_arg *argv;
    char *scratch;
    size_t scratch_cap;
    char errbuf[64];
};

struct kv_limits {
    long long max_bulk; /* proto-max-bulk-len (512 MB, as Redis) */
    size_t max_inline;  /* an inline request or a header line (64 KB) */
    long long max_argc; /* arguments of one request */
};

enum {
    RESP_MORE = 0,    /* not a whole request yet */
    RESP_REQUEST = 1, /* *req holds one (argc may be 0: nothing to do) */
    RESP_ERROR = -1,  /* malformed: reply *err and close, as Redis does */
};

/* Parse one request from buf[0..len): *used bytes make it. */
int resp_parse(const char *buf, size_t len, const struct kv_limits *lim,
               struct kv_req *req, size_t *used, const char **err);
void resp_req_free(struct kv_req *req);

/* Redis's string2ll: a strict decimal long long ("-0", "+1", " 1",
 * "01" are not). */
bool kv_parse_ll(const char *p, size_t n, long long *v);

/* ---- the keyspace of one shard (keyspace.c) ---- */

/* A key with its value in one allocation: key bytes, then value bytes. */
struct kv_entry {
    struct kv_entry *next; /* bucket chain */
    int64_t expire;        /* kv_now_ms() time; 0 = none */
    uint32_t hash;
    uint32_t exp_idx; /* in expires[], when expire != 0 */
    uint32_t klen, vlen, vcap;
    char data[];
};

static inline const char *kv_val(const struct kv_entry *e)
{
    return e->data + e->klen;
}

struct kv_keyspace {
    struct kv_entry **buckets;
    size_t mask, count;
    struct kv_entry **expires; /* keys with a time to live (sampled) */
    size_t nexpires, expires_cap;
    _Atomic size_t mem;                 /* bytes this keyspace allocated */
    _Atomic unsigned long long expired; /* keys removed by expiry */
    uint64_t rng;
};

/* A counter with one writer (its shard's core) that INFO may read from
 * another core: a relaxed load and store, not a locked add. */
static inline void kv_count(_Atomic unsigned long long *n, unsigned long long d)
{
    atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

static inline void kv_count_size(_Atomic size_t *n, size_t d)
{
    atomic_store_explicit(n, atomic_load_explicit(n, memory_order_relaxed) + d,
                          memory_order_relaxed);
}

/* Time for expiry, in Unix-like milliseconds: weft_now() (so the virtual
 * clock drives it in tests) plus an offset fixed at start. */
extern int64_t kv_epoch_ms;
static inline int64_t kv_now_ms(void)
{
    return kv_epoch_ms + weft_now() / WEFT_MSEC;
}
void kv_clock_init(void); /* epoch: Unix time now less weft_now() */

void ks_init(struct kv_keyspace *ks);
void ks_free(struct kv_keyspace *ks);
uint64_t kv_hash(const void *key, size_t n);
/* The live entry of key, NULL if none; an expired one is deleted (lazy
 * expiry, as Redis's lookupKey). */
struct kv_entry *ks_get(struct kv_keyspace *ks, const void *key, size_t n,
                        int64_t now);
/* Set key to val (insert or replace); keep_ttl keeps a time to live,
 * else it is dropped. Returns the entry. */
struct kv_entry *ks_put(struct kv_keyspace *ks, const void *key, size_t n,
                        const void *val, size_t vlen, int64_t now,
                        bool keep_ttl);
/* Append to key's value (creating it): the entry. */
struct kv_entry *ks_append(struct kv_keyspace *ks, const void *key, size_t n,
                           const void *val, size_t vlen, int64_t now);
bool ks_del(struct kv_keyspace *ks, const void *key, size_t n, int64_t now);
void ks_set_expire(struct kv_keyspace *ks, struct kv_entry *e, int64_t when);
void ks_persist(struct kv_keyspace *ks, struct kv_entry *e);
void ks_flush(struct kv_keyspace *ks);
/* The active sweep, one round as Redis's activeExpireCycle: sample up to
 * 20 keys with a time to live, delete the expired ones, and go again
 * while more than a tenth of a sample had expired, at most max_samples
 * times. Returns how many keys it deleted. */
size_t ks_sweep(struct kv_keyspace *ks, int64_t now, unsigned max_samples);

/* ---- the server's shards (shard.c) ---- */

struct kv_config {
    unsigned cores;
    int port;
    const char *bind;
    long maxclients;
    weft_time idle_timeout; /* 0 = none (Redis's timeout 0) */
    weft_time drain_grace;
    weft_time sweep_every; /* the active sweep's period (Redis hz 10) */
    struct kv_limits limits;
    size_t max_query; /* client-query-buffer-limit */
    weft_tls_config *tls;
    const char *dump;  /* write every key here at exit */
    bool no_multishot; /* --no-multishot: one receive per request */
};

extern struct kv_config kv_cfg;

/* A shard holds its part of every database: db[i] is database i's keys
 * of this shard. Database 0's table is made at start, the others' when a
 * command first uses them (kv_db), so a server that never says SELECT
 * costs no more than one with a single database, and a key costs the
 * same in any of them (no database field in an entry). */
struct kv_shard {
    _Alignas(64) struct kv_keyspace db[KV_DBS];
    /* the connections of this core, for the drain (this core's tasks) */
    struct kv_conn *conns;
    bool draining;
    weft_time now; /* weft_now() at the last sweep: the idle clock */
    _Atomic unsigned long long commands;
};

extern struct kv_shard kv_shards[KV_MAX_CORES];
extern unsigned kv_nshards;
extern _Atomic long kv_clients;
extern _Atomic unsigned long long kv_connections_total;
/* Gathers over several shards (kv_gather) cancelled while they waited for
 * another core's part: the drain's grace ran out mid-hop. INFO stats'
 * weft_gathers_cancelled, and a line at exit. */
extern _Atomic unsigned long long kv_gathers_cancelled;

/* Database db of shard sh, its table made on first use: on sh's core. */
struct kv_keyspace *kv_db(struct kv_shard *sh, int db);
/* Whether database db of sh has a table yet (may hold keys). */
static inline bool kv_db_used(const struct kv_shard *sh, int db)
{
    return sh->db[db].buckets != NULL;
}

/* FNV-1a's last multiply barely reaches the top half with the last byte,
 * so the top half alone put "k:1" .. "k:9" on one shard: fold the halves,
 * mix them (a multiplicative hash) and map the high bits onto the shards
 * (Lemire's range reduction, no division). */
static inline unsigned kv_shard_of(const void *key, size_t n)
{
    if (kv_nshards <= 1)
        return 0;
    uint64_t h = kv_hash(key, n);
    uint32_t x = (uint32_t)(h ^ (h >> 32)) * 0x9e3779b1u;
    return (unsigned)(((uint64_t)x * kv_nshards) >> 32);
}

/* A connection, as the commands see it. */
struct kv_conn {
    struct kv_conn *next, *prev; /* its shard's conns */
    weft_stream *s;
    int fd;  /* s's socket (plain TCP), for raw ring operations; else -1 */
    bool ms; /* s has a multishot receive: receive through s */
    weft_scope *idle;     /* set while waiting for a request with none left */
    weft_time idle_since; /* its shard's now when it began to wait */
    bool close_after;     /* QUIT, or a protocol error */
    int db;               /* SELECT's database, 0 .. KV_DBS - 1 */
    char name[64];
    uint64_t id;
};

/* Run one request, its reply appended to out; a command for a key of
 * another core hops there. 0, or -ECANCELED (the reply may be partial:
 * the connection is closed). */
int kv_execute(struct kv_conn *c, struct kv_req *req, struct kv_out *out);

/* ---- the commands (commands.c) ---- */

struct kv_ctx {
    struct kv_conn *conn;
    int argc;
    struct kv_arg *argv;
    struct kv_out *out;
    int db;                 /* the connection's database */
    struct kv_keyspace *ks; /* db's keys in the shard of argv[1] (single-key
                               commands) or of the connection's core */
    int64_t now;
};

enum {
    KV_LOCAL = 0, /* no key: run on the connection's core */
    KV_KEY = 1,   /* one key, argv[1]: run on its shard's core */
    KV_MULTI = 2, /* keys in several shards: the command gathers */
};

struct kv_command {
    const char *name;
    int arity; /* Redis's: n exactly, -n at least n */
    int kind;
    int (*fn)(struct kv_ctx *c); /* 0 or -ECANCELED */
};

/* The command req names (a subcommand for CONFIG, CLIENT, COMMAND), or
 * NULL with Redis 7.0's error in out: an unknown command or subcommand,
 * a wrong number of arguments. */
const struct kv_command *kv_resolve(const struct kv_req *req,
                                    struct kv_out *out);
/* The number of commands (COMMAND COUNT): subcommands are not counted. */
int kv_command_count(void);

/* What COMMAND INFO and COMMAND DOCS say of a command, as RESP2 bytes that
 * redis-server 7.0 gave (command_docs.c, generated by
 * tests/kv/command_docs.py from the command table). */
struct kv_command_doc {
    const char *name; /* "get", or "config|get" for a subcommand */
    const char *info; /* its COMMAND INFO entry */
    const char *docs; /* its COMMAND DOCS value */
};

extern const struct kv_command_doc kv_command_docs[];
extern const int kv_command_ndocs;

/* Multi-key commands (shard.c): each(ks, c, i, res) for the keys argv[first],
 * argv[first + step], ..., run on each key's shard's core (the other
 * shards' at once, children of one group). The sum of what each returned,
 * or -ECANCELED. */
typedef long long (*kv_each_fn)(struct kv_keyspace *ks, struct kv_ctx *c, int i,
                                void *res);
long long kv_gather(struct kv_ctx *c, int first, int step, kv_each_fn each,
                    void *res);
/* kv_gather in a shielded scope, for the commands that write (MSET, DEL):
 * once begun, every shard involved runs its part and the command ends
 * with its reply even if the connection is cancelled meanwhile (the parts
 * never wait, so the shield holds nothing up). The parts alone would run
 * whole anyway, as a cancelled task runs to its first checkpoint and a
 * part has none; the shield makes that the rule rather than a detail. */
long long kv_gather_whole(struct kv_ctx *c, int first, int step,
                          kv_each_fn each, void *res);
/* fn(sh, arg) on every shard's core: the sum, or -ECANCELED. */
long long kv_every_shard(long long (*fn)(struct kv_shard *sh, void *arg),
                         void *arg);
/* What INFO says; server.c */
void kv_info(struct kv_out *o, const char *section);

#endif
