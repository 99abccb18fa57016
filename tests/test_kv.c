/* SPDX-License-Identifier: MIT */
/*
 * test_kv.c - weft-kv's parts that need no network: its keyspace's expiry
 * under the virtual clock (hours of lazy and active expiry in
 * milliseconds), its request parser (every prefix of a request is
 * "more", pipelined requests, Redis's protocol errors), and its commands
 * run on one shard as a connection runs them (databases, CONFIG GET,
 * COMMAND), with the sharding of keys.
 */
#include "helpers.h"

#include <limits.h>

#include "docs/examples/weft-kv/kv.h"

#define HOUR (3600 * WEFT_SEC)

static const weft_options virt = {.clock = WEFT_CLOCK_VIRTUAL};

/* ---- expiry ---- */

struct sweep {
    struct kv_keyspace ks;
    size_t swept;
    unsigned rounds;
};

/* As weft-kv's sweeper: a round every 100 ms on weft's timers. */
static int sweeper(void *arg)
{
    struct sweep *s = arg;
    for (;;) {
        int rc = weft_sleep(100 * WEFT_MSEC);
        if (rc < 0)
            return rc;
        s->swept += ks_sweep(&s->ks, kv_now_ms(), 200);
        s->rounds++;
    }
}

static int lazy_expiry_body(void *arg)
{
    (void)arg;
    kv_clock_init();
    struct kv_keyspace ks;
    ks_init(&ks);
    struct kv_entry *e = ks_put(&ks, "k", 1, "v", 1, kv_now_ms(), false);
    ks_set_expire(&ks, e, kv_now_ms() + 3600 * 1000); /* an hour */
    ks_put(&ks, "forever", 7, "v", 1, kv_now_ms(), false);
    CHECK_EQ(weft_sleep(59 * 60 * WEFT_SEC), 0);
    CHECK(ks_get(&ks, "k", 1, kv_now_ms()) != NULL);
    CHECK_EQ(ks.count, 2);
    CHECK_EQ(weft_sleep(2 * 60 * WEFT_SEC), 0);
    CHECK(ks_get(&ks, "k", 1, kv_now_ms()) == NULL); /* deleted on access */
    CHECK_EQ(ks.count, 1);
    CHECK_EQ(ks.nexpires, 0);
    CHECK(ks_get(&ks, "forever", 7, kv_now_ms()) != NULL);
    ks_free(&ks);
    return 0;
}

static void test_kv_key_expires_lazily_after_an_hour(void **state)
{
    (void)state;
    run_in_loop_opts(lazy_expiry_body, NULL, &virt, 0);
}

static int active_body(void *arg)
{
    (void)arg;
    kv_clock_init();
    struct sweep *s = calloc(1, sizeof *s);
    ks_init(&s->ks);
    enum { N = 10000, KEEP = 100 };
    int64_t t0 = kv_now_ms();
    char key[32];
    /* N keys expiring over three hours, KEEP that never do */
    for (int i = 0; i < N + KEEP; i++) {
        int n = snprintf(key, sizeof key, "key:%d", i);
        struct kv_entry *e = ks_put(&s->ks, key, (size_t)n, "v", 1, t0, false);
        if (i < N)
            ks_set_expire(&s->ks, e, t0 + 1000 + (int64_t)i * 1080);
    }
    weft_group g;
    weft_group_enter(&g);
    weft_group_spawn(&g, sweeper, s);
    /* every 10 minutes of virtual time: no key that should live was
     * swept, and the sweep keeps up with those that expired */
    for (int step = 1; step <= 20; step++) {
        CHECK_EQ(weft_sleep(10 * 60 * WEFT_SEC), 0);
        int64_t now = kv_now_ms();
        size_t live = KEEP;
        for (int i = 0; i < N; i++)
            if (t0 + 1000 + (int64_t)i * 1080 > now)
                live++;
        /* the sweep never takes a live key: each is still there */
        CHECK(s->ks.count >= live);
        /* and it has removed nearly all of the expired ones without
         * anyone reading them. A round with at most a tenth of its 20
         * keys stale ends after one sample, so stale keys wait at a
         * steady share p of the keys with a time to live: 20p deleted
         * per 100 ms round against 0.0926 expiring, p = 0.46%, about 46
         * of the 10,000 (runs saw 39 to 52; 50 failed one run in ten) */
        CHECK(s->ks.count <= live + 100);
    }
    /* past every expiry: only the keys without one remain */
    CHECK_EQ(weft_sleep(HOUR), 0);
    CHECK_EQ(s->ks.count, KEEP);
    CHECK_EQ(s->ks.nexpires, 0);
    CHECK_EQ(s->swept, N);
    CHECK(s->rounds >= 3 * 36000); /* a round per 100 ms for 3+ hours */
    weft_group_cancel(&g);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    ks_free(&s->ks);
    free(s);
    return 0;
}

static void test_kv_active_sweep_removes_unread_keys_over_hours(void **state)
{
    (void)state;
    run_in_loop_opts(active_body, NULL, &virt, 0);
}

static int ttl_change_body(void *arg)
{
    (void)arg;
    kv_clock_init();
    struct kv_keyspace ks;
    ks_init(&ks);
    int64_t now = kv_now_ms();
    struct kv_entry *a = ks_put(&ks, "a", 1, "1", 1, now, false);
    ks_set_expire(&ks, a, now + 1000);
    /* SET without KEEPTTL drops the time to live; APPEND keeps it */
    ks_put(&ks, "a", 1, "22", 2, now, false);
    CHECK_EQ(ks_get(&ks, "a", 1, now)->expire, 0);
    a = ks_get(&ks, "a", 1, now);
    ks_set_expire(&ks, a, now + 1000);
    struct kv_entry *b = ks_append(&ks, "a", 1, "333333333333", 12, now);
    CHECK_EQ(b->expire, now + 1000);
    CHECK_EQ(b->vlen, 14);
    CHECK(memcmp(kv_val(b), "22333333333333", 14) == 0);
    ks_put(&ks, "b", 1, "x", 1, now, true);
    CHECK_EQ(weft_sleep(2 * WEFT_SEC), 0);
    CHECK(ks_get(&ks, "a", 1, kv_now_ms()) == NULL);
    CHECK(ks_get(&ks, "b", 1, kv_now_ms()) != NULL);
    ks_free(&ks);
    return 0;
}

static void test_kv_set_drops_ttl_and_append_keeps_it(void **state)
{
    (void)state;
    run_in_loop_opts(ttl_change_body, NULL, &virt, 0);
}

/* ---- the parser ---- */

static const struct kv_limits lim = {
    .max_bulk = 1000, .max_inline = 64 << 10, .max_argc = 1 << 20};

static void test_kv_every_prefix_of_a_request_needs_more(void **state)
{
    (void)state;
    const char *r = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n";
    size_t len = strlen(r), used = 0;
    struct kv_req req = {0};
    const char *err = NULL;
    for (size_t n = 0; n < len; n++)
        assert_int_equal(resp_parse(r, n, &lim, &req, &used, &err), RESP_MORE);
    assert_int_equal(resp_parse(r, len, &lim, &req, &used, &err), RESP_REQUEST);
    assert_int_equal(used, len);
    assert_int_equal(req.argc, 3);
    assert_memory_equal(req.argv[2].p, "hello", 5);
    resp_req_free(&req);
}

static void test_kv_pipelined_and_inline_requests(void **state)
{
    (void)state;
    const char *r = "PING\r\n*1\r\n$4\r\nPING\r\nset 'a b' \"c\\x41\\n\"\n"
                    "\r\n";
    size_t len = strlen(r), pos = 0, used;
    struct kv_req req = {0};
    const char *err = NULL;
    int argcs[] = {1, 1, 3, 0};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(
            resp_parse(r + pos, len - pos, &lim, &req, &used, &err),
            RESP_REQUEST);
        assert_int_equal(req.argc, argcs[i]);
        if (i == 2) {
            assert_int_equal(req.argv[1].len, 3);
            assert_memory_equal(req.argv[1].p, "a b", 3);
            assert_memory_equal(req.argv[2].p, "cA\n", 3);
        }
        pos += used;
    }
    assert_int_equal(pos, len);
    resp_req_free(&req);
}

static void test_kv_malformed_requests_are_redis_errors(void **state)
{
    (void)state;
    static const struct {
        const char *in, *err;
    } cases[] = {
        {"*x\r\n", "ERR Protocol error: invalid multibulk length"},
        {"*1\r\n+a\r\n", "ERR Protocol error: expected '$', got '+'"},
        {"*1\r\n$1001\r\n", "ERR Protocol error: invalid bulk length"},
        {"*1\r\n$-1\r\n", "ERR Protocol error: invalid bulk length"},
        {"get \"a\"b\r\n", "ERR Protocol error: unbalanced quotes in request"},
        {"get 'a\r\n", "ERR Protocol error: unbalanced quotes in request"},
    };
    struct kv_req req = {0};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t used = 0;
        const char *err = NULL;
        assert_int_equal(resp_parse(cases[i].in, strlen(cases[i].in), &lim,
                                    &req, &used, &err),
                         RESP_ERROR);
        assert_string_equal(err, cases[i].err);
    }
    char *big = malloc(70000);
    memset(big, 'a', 70000);
    size_t used;
    const char *err = NULL;
    assert_int_equal(resp_parse(big, 70000, &lim, &req, &used, &err),
                     RESP_ERROR);
    assert_string_equal(err, "ERR Protocol error: too big inline request");
    free(big);
    resp_req_free(&req);
}

static void test_kv_integers_parse_as_redis_string2ll(void **state)
{
    (void)state;
    long long v;
    assert_true(kv_parse_ll("9223372036854775807", 19, &v));
    assert_true(v == LLONG_MAX);
    assert_true(kv_parse_ll("-9223372036854775808", 20, &v));
    assert_true(v == LLONG_MIN);
    assert_false(kv_parse_ll("9223372036854775808", 19, &v));
    assert_true(kv_parse_ll("0", 1, &v) && v == 0);
    const char *bad[] = {"", "-", "-0", "01", "+1", " 1", "1 ", "1.5", "0x1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_false(kv_parse_ll(bad[i], strlen(bad[i]), &v));
}

/* ---- commands, on one shard ---- */

/* What server.c defines for the commands: its options, and INFO. */
struct kv_config kv_cfg = {
    .cores = 1,
    .port = 6379,
    .bind = "127.0.0.1",
    .maxclients = 10000,
    .limits = {.max_bulk = 512LL << 20,
               .max_inline = 64 << 10,
               .max_argc = 1 << 20},
    .max_query = (size_t)1 << 30,
};

void kv_info(struct kv_out *o, const char *section)
{
    (void)o;
    (void)section;
}

struct session {
    struct kv_conn conn;
    struct kv_req req;
    struct kv_out out;
};

/* Run one inline request as a connection would; its reply, NUL-ended. */
static const char *run(struct session *s, const char *line)
{
    size_t used;
    const char *err = NULL;
    char buf[512];
    int n = snprintf(buf, sizeof buf, "%s\r\n", line);
    s->out.len = 0;
    if (resp_parse(buf, (size_t)n, &kv_cfg.limits, &s->req, &used, &err) !=
            RESP_REQUEST ||
        kv_execute(&s->conn, &s->req, &s->out) != 0)
        return "(failed)";
    out_raw(&s->out, "", 1);
    return s->out.buf;
}

static void session_open(struct session *s)
{
    memset(s, 0, sizeof *s);
    s->conn.fd = -1;
    kv_clock_init();
    kv_nshards = 1;
    ks_init(&kv_shards[0].db[0]); /* as main: database 0 at start */
}

static void session_close(struct session *s)
{
    for (int db = 0; db < KV_DBS; db++)
        if (kv_db_used(&kv_shards[0], db))
            ks_free(&kv_shards[0].db[db]);
    resp_req_free(&s->req);
    out_free(&s->out);
}

static bool is(const char *got, const char *want)
{
    if (strcmp(got, want) == 0)
        return true;
    print_message("got %s, want %s\n", got, want);
    return false;
}

static int databases_body(void *arg)
{
    (void)arg;
    struct session s;
    session_open(&s);
    struct kv_shard *sh = &kv_shards[0];
    CHECK(is(run(&s, "SET k zero"), "+OK\r\n"));
    CHECK(is(run(&s, "SELECT 3"), "+OK\r\n"));
    CHECK_EQ(s.conn.db, 3);
    CHECK(is(run(&s, "GET k"), "$-1\r\n"));
    /* a database's table is made when a command first uses it */
    CHECK(kv_db_used(sh, 3));
    CHECK(!kv_db_used(sh, 5));
    /* a key costs the same in any database: no database field */
    size_t before = sh->db[3].mem;
    CHECK(is(run(&s, "SET k three"), "+OK\r\n"));
    size_t in3 = sh->db[3].mem - before;
    before = sh->db[0].mem;
    ks_put(&sh->db[0], "j", 1, "three", 5, kv_now_ms(), false);
    CHECK_EQ(sh->db[0].mem - before, in3);
    ks_del(&sh->db[0], "j", 1, kv_now_ms());
    CHECK(is(run(&s, "DBSIZE"), ":1\r\n"));
    CHECK(is(run(&s, "SELECT 0"), "+OK\r\n"));
    CHECK(is(run(&s, "GET k"), "$4\r\nzero\r\n"));
    CHECK(is(run(&s, "SELECT 16"), "-ERR DB index is out of range\r\n"));
    CHECK(is(run(&s, "SELECT -1"), "-ERR DB index is out of range\r\n"));
    CHECK(is(run(&s, "SELECT x"),
             "-ERR value is not an integer or out of range\r\n"));
    CHECK_EQ(s.conn.db, 0); /* a refused SELECT leaves the database */
    CHECK(is(run(&s, "SELECT 15"), "+OK\r\n"));
    CHECK(is(run(&s, "MSET a 1 b 2 k fifteen"), "+OK\r\n"));
    CHECK(is(run(&s, "SELECT 3"), "+OK\r\n"));
    CHECK(is(run(&s, "FLUSHDB"), "+OK\r\n"));
    CHECK(is(run(&s, "DBSIZE"), ":0\r\n"));
    CHECK(is(run(&s, "SELECT 15"), "+OK\r\n"));
    CHECK(is(run(&s, "DBSIZE"), ":3\r\n"));
    CHECK(is(run(&s, "FLUSHALL"), "+OK\r\n"));
    CHECK(is(run(&s, "DBSIZE"), ":0\r\n"));
    CHECK(is(run(&s, "SELECT 0"), "+OK\r\n"));
    CHECK(is(run(&s, "DBSIZE"), ":0\r\n"));
    session_close(&s);
    return 0;
}

static void test_kv_databases_are_apart_and_made_on_first_use(void **state)
{
    (void)state;
    run_in_loop(databases_body, NULL);
}

static int config_body(void *arg)
{
    (void)arg;
    struct session s;
    session_open(&s);
    /* a name replies under the name as written; a pattern, the name */
    CHECK(is(run(&s, "CONFIG GET SAVE"), "*2\r\n$4\r\nSAVE\r\n$0\r\n\r\n"));
    CHECK(is(run(&s, "CONFIG GET appendonl*"),
             "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n"));
    CHECK(is(run(&s, "CONFIG GET databases"),
             "*2\r\n$9\r\ndatabases\r\n$2\r\n16\r\n"));
    /* a parameter once, however many arguments match it */
    CHECK(is(run(&s, "CONFIG GET save Save sav* s?ve"),
             "*2\r\n$4\r\nsave\r\n$0\r\n\r\n"));
    /* nothing for what matches nothing */
    CHECK(is(run(&s, "CONFIG GET nosuch nosuch* sav"), "*0\r\n"));
    CHECK(is(run(&s, "CONFIG GET [h]z nosuch"),
             "*2\r\n$2\r\nhz\r\n$2\r\n10\r\n"));
    CHECK(strncmp(run(&s, "CONFIG GET MAXMEM*"), "*4\r\n", 4) == 0);
    session_close(&s);
    return 0;
}

static void test_kv_config_get_matches_names_and_patterns_as_redis(void **state)
{
    (void)state;
    run_in_loop(config_body, NULL);
}

static int command_body(void *arg)
{
    (void)arg;
    struct session s;
    session_open(&s);
    int top = 0;
    char line[128], want[128];
    for (int i = 0; i < kv_command_ndocs; i++) {
        const struct kv_command_doc *d = &kv_command_docs[i];
        if (strchr(d->name, '|'))
            continue;
        top++;
        /* each entry names itself, and a command weft-kv has */
        snprintf(line, sizeof line, "COMMAND INFO %s", d->name);
        snprintf(want, sizeof want, "*1\r\n*10\r\n$%zu\r\n%s\r\n",
                 strlen(d->name), d->name);
        CHECK(strncmp(run(&s, line), want, strlen(want)) == 0);
        CHECK(strstr(run(&s, d->name), "unknown command") == NULL);
    }
    snprintf(want, sizeof want, ":%d\r\n", top);
    CHECK(is(run(&s, "COMMAND COUNT"), want));
    CHECK_EQ(kv_command_count(), top); /* one entry per command */
    CHECK(is(run(&s, "COMMAND INFO nosuch get|x"), "*2\r\n$-1\r\n$-1\r\n"));
    CHECK(is(run(&s, "COMMAND DOCS nosuch"), "*0\r\n"));
    CHECK(strncmp(run(&s, "COMMAND DOCS GET nosuch"), "*2\r\n$3\r\nget\r\n*",
                  13) == 0);
    CHECK(strncmp(run(&s, "COMMAND INFO CONFIG|GET"),
                  "*1\r\n*10\r\n$10\r\nconfig|get\r\n", 26) == 0);
    session_close(&s);
    return 0;
}

static void test_kv_command_info_and_docs_name_every_command(void **state)
{
    (void)state;
    run_in_loop(command_body, NULL);
}

static void test_kv_keys_differing_in_their_last_byte_spread(void **state)
{
    (void)state;
    char key[16];
    unsigned per[4] = {0};
    kv_nshards = 2;
    for (int i = 0; i < 10; i++)
        per[kv_shard_of(key, (size_t)snprintf(key, sizeof key, "k:%d", i))]++;
    assert_true(per[0] > 0 && per[1] > 0);
    memset(per, 0, sizeof per);
    kv_nshards = 4;
    for (int i = 0; i < 100; i++)
        per[kv_shard_of(key,
                        (size_t)snprintf(key, sizeof key, "key:%02d", i))]++;
    for (int s = 0; s < 4; s++)
        assert_in_range(per[s], 10, 40);
    kv_nshards = 1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kv_key_expires_lazily_after_an_hour),
        cmocka_unit_test(test_kv_active_sweep_removes_unread_keys_over_hours),
        cmocka_unit_test(test_kv_set_drops_ttl_and_append_keeps_it),
        cmocka_unit_test(test_kv_every_prefix_of_a_request_needs_more),
        cmocka_unit_test(test_kv_pipelined_and_inline_requests),
        cmocka_unit_test(test_kv_malformed_requests_are_redis_errors),
        cmocka_unit_test(test_kv_integers_parse_as_redis_string2ll),
        cmocka_unit_test(test_kv_databases_are_apart_and_made_on_first_use),
        cmocka_unit_test(
            test_kv_config_get_matches_names_and_patterns_as_redis),
        cmocka_unit_test(test_kv_command_info_and_docs_name_every_command),
        cmocka_unit_test(test_kv_keys_differing_in_their_last_byte_spread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
