/* SPDX-License-Identifier: MIT */
/*
 * keyspace.c - one shard's keys: a chained hash table of strings, each
 * key and its value in one allocation, and Redis's two kinds of expiry.
 *
 *  - Lazy: a lookup that finds a key whose time has passed deletes it and
 *    answers "no such key" (Redis's expireIfNeeded).
 *  - Active: ks_sweep, called by a task of the shard's core every 100 ms
 *    on weft's timers, samples keys that have a time to live and deletes
 *    the expired ones, going on while many of a sample were stale, within
 *    a bound per round (Redis's activeExpireCycle). The keys with a time
 *    to live are kept in an array (expires[]), each entry knowing its
 *    index, so sampling is a random index and removal a swap.
 *
 * A keyspace belongs to one core and is used only by that core's tasks:
 * no locks. mem and expired are atomics only so that INFO on another core
 * may read them.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kv.h"

int64_t kv_epoch_ms;

void kv_clock_init(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t unix_ms = (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    kv_epoch_ms = unix_ms - weft_now() / WEFT_MSEC;
}

/* FNV-1a, 64 bits: keys are short; the bottom half picks the bucket, both
 * halves mixed the shard (kv_shard_of). */
uint64_t kv_hash(const void *key, size_t n)
{
    const unsigned char *p = key;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    return h;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        abort(); /* as Redis without maxmemory: out of memory is fatal */
    return p;
}

static void mem_add(struct kv_keyspace *ks, void *p)
{
    kv_count_size(&ks->mem, malloc_usable_size(p));
}

static void mem_sub(struct kv_keyspace *ks, void *p)
{
    kv_count_size(&ks->mem, -malloc_usable_size(p));
}

void ks_init(struct kv_keyspace *ks)
{
    /* Field by field, the counters with atomic stores: a database's table
     * is made while the server runs, and INFO on another core may be
     * reading its counters (a memset would race with that read). */
    ks->count = ks->nexpires = ks->expires_cap = 0;
    ks->expires = NULL;
    atomic_store_explicit(&ks->mem, 0, memory_order_relaxed);
    atomic_store_explicit(&ks->expired, 0, memory_order_relaxed);
    ks->mask = 15;
    ks->buckets = calloc(ks->mask + 1, sizeof *ks->buckets);
    if (!ks->buckets)
        abort();
    mem_add(ks, ks->buckets);
    ks->rng = 0x9e3779b97f4a7c15ull ^ (uint64_t)(uintptr_t)ks;
}

static void free_entries(struct kv_keyspace *ks)
{
    for (size_t i = 0; i <= ks->mask; i++) {
        struct kv_entry *e = ks->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            mem_sub(ks, e);
            free(e);
        }
        ks->buckets[i] = NULL;
    }
    ks->count = 0;
    ks->nexpires = 0;
}

void ks_free(struct kv_keyspace *ks)
{
    free_entries(ks);
    free(ks->buckets);
    free(ks->expires);
    memset(ks, 0, sizeof *ks);
}

void ks_flush(struct kv_keyspace *ks)
{
    free_entries(ks);
}

/* Double the buckets when there are more keys than buckets. */
static void grow(struct kv_keyspace *ks)
{
    size_t nmask = ks->mask * 2 + 1;
    struct kv_entry **nb = calloc(nmask + 1, sizeof *nb);
    if (!nb)
        abort();
    for (size_t i = 0; i <= ks->mask; i++) {
        struct kv_entry *e = ks->buckets[i], *next;
        for (; e; e = next) {
            next = e->next;
            e->next = nb[e->hash & nmask];
            nb[e->hash & nmask] = e;
        }
    }
    mem_sub(ks, ks->buckets);
    free(ks->buckets);
    ks->buckets = nb;
    ks->mask = nmask;
    mem_add(ks, nb);
}

/* Where key is (or would be linked): the pointer to it in its chain. */
static struct kv_entry **slot_of(struct kv_keyspace *ks, const void *key,
                                 size_t n, uint32_t h)
{
    struct kv_entry **pp = &ks->buckets[h & ks->mask];
    for (; *pp; pp = &(*pp)->next) {
        struct kv_entry *e = *pp;
        if (e->hash == h && e->klen == n && memcmp(e->data, key, n) == 0)
            return pp;
    }
    return pp;
}

static void expires_remove(struct kv_keyspace *ks, struct kv_entry *e)
{
    struct kv_entry *last = ks->expires[--ks->nexpires];
    ks->expires[e->exp_idx] = last;
    last->exp_idx = e->exp_idx;
    e->expire = 0;
}

static void unlink_free(struct kv_keyspace *ks, struct kv_entry **pp)
{
    struct kv_entry *e = *pp;
    *pp = e->next;
    if (e->expire)
        expires_remove(ks, e);
    ks->count--;
    mem_sub(ks, e);
    free(e);
}

/* The slot of a live key: an expired one is deleted (NULL *slot). */
static struct kv_entry **live_slot(struct kv_keyspace *ks, const void *key,
                                   size_t n, uint32_t h, int64_t now)
{
    struct kv_entry **pp = slot_of(ks, key, n, h);
    if (*pp && (*pp)->expire && (*pp)->expire <= now) {
        unlink_free(ks, pp);
        kv_count(&ks->expired, 1);
        pp = slot_of(ks, key, n, h);
    }
    return pp;
}

struct kv_entry *ks_get(struct kv_keyspace *ks, const void *key, size_t n,
                        int64_t now)
{
    return *live_slot(ks, key, n, (uint32_t)kv_hash(key, n), now);
}

static struct kv_entry *entry_new(const void *key, size_t n, size_t vcap,
                                  uint32_t h)
{
    struct kv_entry *e = xmalloc(sizeof *e + n + vcap);
    e->next = NULL;
    e->expire = 0;
    e->hash = h;
    e->exp_idx = 0;
    e->klen = (uint32_t)n;
    e->vlen = 0;
    e->vcap = (uint32_t)vcap;
    memcpy(e->data, key, n);
    return e;
}

/* Make room for vlen value bytes in *pp's entry (moving it if needed:
 * its chain and expires[] follow). */
static struct kv_entry *reserve(struct kv_keyspace *ks, struct kv_entry **pp,
                                size_t vlen, bool keep)
{
    struct kv_entry *e = *pp;
    /* shrink too: a big value replaced by a small one gives memory back */
    if (vlen <= e->vcap && (e->vcap <= 64 || vlen >= e->vcap / 2))
        return e;
    size_t cap = keep && vlen > e->vcap ? vlen + vlen / 2 : vlen;
    mem_sub(ks, e);
    struct kv_entry *ne = realloc(e, sizeof *e + e->klen + cap);
    if (!ne)
        abort();
    mem_add(ks, ne);
    ne->vcap = (uint32_t)cap;
    *pp = ne;
    if (ne->expire)
        ks->expires[ne->exp_idx] = ne;
    return ne;
}

static struct kv_entry **insert(struct kv_keyspace *ks, const void *key,
                                size_t n, uint32_t h, size_t vcap)
{
    if (ks->count >= ks->mask + 1)
        grow(ks);
    struct kv_entry **pp = &ks->buckets[h & ks->mask];
    struct kv_entry *e = entry_new(key, n, vcap, h);
    mem_add(ks, e);
    e->next = *pp;
    *pp = e;
    ks->count++;
    return pp;
}

struct kv_entry *ks_put(struct kv_keyspace *ks, const void *key, size_t n,
                        const void *val, size_t vlen, int64_t now,
                        bool keep_ttl)
{
    uint32_t h = (uint32_t)kv_hash(key, n);
    struct kv_entry **pp = live_slot(ks, key, n, h, now);
    struct kv_entry *e;
    if (*pp) {
        e = reserve(ks, pp, vlen, false);
        if (!keep_ttl && e->expire)
            expires_remove(ks, e);
    } else {
        e = *insert(ks, key, n, h, vlen);
    }
    memcpy(e->data + e->klen, val, vlen);
    e->vlen = (uint32_t)vlen;
    return e;
}

struct kv_entry *ks_append(struct kv_keyspace *ks, const void *key, size_t n,
                           const void *val, size_t vlen, int64_t now)
{
    uint32_t h = (uint32_t)kv_hash(key, n);
    struct kv_entry **pp = live_slot(ks, key, n, h, now);
    struct kv_entry *e;
    if (*pp)
        e = reserve(ks, pp, (*pp)->vlen + vlen, true);
    else
        e = *insert(ks, key, n, h, vlen);
    memcpy(e->data + e->klen + e->vlen, val, vlen);
    e->vlen += (uint32_t)vlen;
    return e;
}

bool ks_del(struct kv_keyspace *ks, const void *key, size_t n, int64_t now)
{
    struct kv_entry **pp =
        live_slot(ks, key, n, (uint32_t)kv_hash(key, n), now);
    if (!*pp)
        return false;
    unlink_free(ks, pp);
    return true;
}

void ks_set_expire(struct kv_keyspace *ks, struct kv_entry *e, int64_t when)
{
    if (!e->expire) {
        if (ks->nexpires == ks->expires_cap) {
            size_t cap = ks->expires_cap ? ks->expires_cap * 2 : 64;
            if (ks->expires)
                mem_sub(ks, ks->expires);
            struct kv_entry **x = realloc(ks->expires, cap * sizeof *x);
            if (!x)
                abort();
            mem_add(ks, x);
            ks->expires = x;
            ks->expires_cap = cap;
        }
        e->exp_idx = (uint32_t)ks->nexpires;
        ks->expires[ks->nexpires++] = e;
    }
    e->expire = when ? when : -1; /* 0 means none: a time of 0 is past */
}

void ks_persist(struct kv_keyspace *ks, struct kv_entry *e)
{
    if (e->expire)
        expires_remove(ks, e);
}

static uint64_t next_rand(struct kv_keyspace *ks)
{
    uint64_t x = ks->rng; /* xorshift64 */
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return ks->rng = x;
}

/* Delete an expired entry found in expires[]: unlink it from its chain. */
static void expire_entry(struct kv_keyspace *ks, struct kv_entry *e)
{
    struct kv_entry **pp = &ks->buckets[e->hash & ks->mask];
    while (*pp != e)
        pp = &(*pp)->next;
    unlink_free(ks, pp);
    kv_count(&ks->expired, 1);
}

size_t ks_sweep(struct kv_keyspace *ks, int64_t now, unsigned max_samples)
{
    enum { SAMPLE = 20, STALE_PERCENT = 10 };
    size_t deleted = 0;
    for (unsigned round = 0; round < max_samples && ks->nexpires; round++) {
        unsigned n = ks->nexpires < SAMPLE ? (unsigned)ks->nexpires : SAMPLE;
        unsigned stale = 0;
        for (unsigned i = 0; i < n && ks->nexpires; i++) {
            struct kv_entry *e = ks->expires[next_rand(ks) % ks->nexpires];
            if (e->expire <= now) {
                expire_entry(ks, e);
                stale++;
            }
        }
        deleted += stale;
        if (stale * 100 <= n * STALE_PERCENT)
            break;
    }
    return deleted;
}
