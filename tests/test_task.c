/* SPDX-License-Identifier: MIT */
/*
 * tests/test_task.c - introspection (API.md "Introspection"): the current
 * task, ids and names, the task dump, and a stack overflow that must be
 * reported with the task's name rather than corrupt memory silently.
 */
#include "helpers.h"

/* ---- current task, ids, names ---- */

#define NKIDS 20

struct ident {
    weft_task *root;
    uint64_t root_id;
    weft_task *kids[NKIDS];
    uint64_t ids[NKIDS];
    int n;
};

static int ident_child(void *arg)
{
    struct ident *d = arg;
    weft_task *t = weft_task_current();

    CHECK(t != NULL);
    CHECK(t != d->root);
    CHECK_EQ(weft_checkpoint(), 0);
    CHECK(weft_task_current() == t); /* stable across a yield */
    const char *name = weft_task_name(t);
    CHECK(name != NULL && name[0] != '\0');
    d->kids[d->n] = t;
    d->ids[d->n] = weft_task_id(t);
    d->n++;
    CHECK_EQ(weft_sleep(WEFT_MSEC), 0); /* all alive at once */
    return 0;
}

static int ident_main(void *arg)
{
    struct ident d;
    weft_group g;

    memset(&d, 0, sizeof d);
    d.root = weft_task_current();
    if (!CHECK(d.root != NULL))
        return -EIO;
    d.root_id = weft_task_id(d.root);
    const char *rn = weft_task_name(d.root);
    CHECK(rn != NULL && rn[0] != '\0');
    weft_group_enter(&g);
    for (int i = 0; i < NKIDS; i++)
        CHECK_EQ(weft_group_spawn(&g, ident_child, &d), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(weft_task_current() == d.root);
    CHECK_EQ(d.n, NKIDS);
    for (int i = 0; i < d.n; i++) {
        CHECK_NE(d.ids[i], d.root_id);
        for (int k = i + 1; k < d.n; k++) {
            CHECK_NE(d.ids[i], d.ids[k]);
            CHECK(d.kids[i] != d.kids[k]);
        }
    }
    return 0;
}

static void test_task_current_and_distinct_ids(void **state)
{
    run_in_loop(ident_main, NULL);
    assert_null(weft_task_current());
}

/* Ids are not reused within a loop, even when tasks (and their memory)
 * are. */
static int id_child(void *arg)
{
    uint64_t *slot = arg;
    *slot = weft_task_id(weft_task_current());
    return 0;
}

static int ids_unique_main(void *arg)
{
    uint64_t ids[64];
    weft_group g;

    for (int i = 0; i < 64; i++) {
        weft_group_enter(&g); /* one at a time: the memory is reused */
        CHECK_EQ(weft_group_spawn(&g, id_child, &ids[i]), 0);
        CHECK_EQ(weft_group_exit(&g, 0), 0);
    }
    for (int i = 0; i < 64; i++)
        for (int k = i + 1; k < 64; k++)
            if (!CHECK_NE(ids[i], ids[k]))
                return 0;
    return 0;
}

static void test_task_ids_not_reused(void **state)
{
    run_in_loop(ids_unique_main, NULL);
}

struct named {
    const char *expect;
    bool ok;
};

static int named_child(void *arg)
{
    struct named *n = arg;
    n->ok = CHECK_STR_EQ(weft_task_name(weft_task_current()), n->expect);
    return 0;
}

static int unnamed_child(void *arg)
{
    const char *name = weft_task_name(weft_task_current());
    CHECK(name != NULL && name[0] != '\0');
    return 0;
}

static int started_named_child(void *arg)
{
    struct named *n = arg;
    n->ok = CHECK_STR_EQ(weft_task_name(weft_task_current()), n->expect);
    weft_task_started(NULL);
    return 0;
}

static int names_main(void *arg)
{
    struct named a = {"worker-7", false};
    struct named b = {"another name", false};
    struct named c = {"started-task", false};
    weft_group g;
    void *v;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_named(&g, a.expect, named_child, &a), 0);
    CHECK_EQ(weft_group_spawn_named(&g, b.expect, named_child, &b), 0);
    CHECK_EQ(weft_group_spawn(&g, unnamed_child, NULL), 0);
    CHECK_EQ(weft_group_start_named(&g, c.expect, started_named_child, &c, &v),
             0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    CHECK(a.ok);
    CHECK(b.ok);
    CHECK(c.ok);
    return 0;
}

static void test_task_names(void **state)
{
    run_in_loop(names_main, NULL);
}

/* ---- weft_dump_tasks ---- */

struct dump {
    char *text;
    size_t len;
};

static int dump_sleeper(void *arg)
{
    return weft_sleep_forever();
}

static int dump_middle(void *arg)
{
    weft_group inner;

    weft_group_enter(&inner);
    CHECK_EQ(weft_group_spawn_named(&inner, "deep-gamma", dump_sleeper, NULL),
             0);
    return weft_group_exit(&inner, weft_sleep_forever());
}

static int dump_main(void *arg)
{
    struct dump *d = arg;
    weft_group g;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn_named(&g, "sleepy-alpha", dump_sleeper, NULL), 0);
    CHECK_EQ(weft_group_spawn_named(&g, "sleepy-beta", dump_sleeper, NULL), 0);
    CHECK_EQ(weft_group_spawn_named(&g, "middle-delta", dump_middle, NULL), 0);
    th_settle();
    FILE *f = open_memstream(&d->text, &d->len);
    if (CHECK(f != NULL)) {
        weft_dump_tasks(f);
        fclose(f);
    }
    weft_group_cancel(&g);
    return weft_group_exit(&g, 0);
}

static void test_dump_tasks_mentions_named_tasks(void **state)
{
    struct dump d = {NULL, 0};

    run_in_loop(dump_main, &d);
    assert_non_null(d.text);
    print_message("%s", d.text);
    assert_non_null(strstr(d.text, "sleepy-alpha"));
    assert_non_null(strstr(d.text, "sleepy-beta"));
    assert_non_null(strstr(d.text, "middle-delta"));
    assert_non_null(strstr(d.text, "deep-gamma"));
    /* where each waits */
    assert_non_null(strcasestr(d.text, "sleep"));
    /* the tree: the grandchild comes after its parent */
    assert_true(strstr(d.text, "deep-gamma") > strstr(d.text, "middle-delta"));
    free(d.text);
}

static void test_dump_tasks_outside_loop_is_harmless(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    assert_non_null(f);
    weft_dump_tasks(f);
    fclose(f);
    free(text);
}

/* ---- stack overflow onto the guard page ---- */

static int __attribute__((noinline)) recurse(int n)
{
    volatile char buf[512];

    buf[0] = (char)n;
    buf[sizeof buf - 1] = (char)n;
    if (n > (1 << 30))
        return buf[0];
    return recurse(n + 1) + buf[sizeof buf - 1];
}

static int deep_task(void *arg)
{
    return recurse(0) == 42 ? 0 : -EIO;
}

static int overflow_main(void *arg)
{
    weft_group g;

    weft_group_enter(&g);
    weft_group_spawn_named(&g, "deep-diver", deep_task, NULL);
    return weft_group_exit(&g, 0);
}

static void overflow_run(unsigned flags)
{
    weft_options o;

    memset(&o, 0, sizeof o);
    o.stack_size = 16 * 1024;
    o.flags = flags;
    int rc = weft_run(overflow_main, NULL, &o);
    fprintf(stderr, "TEST: weft_run returned %d after the overflow\n", rc);
    _exit(20);
}

static void overflow_child(void)
{
    overflow_run(0);
}

static void overflow_child_no_handler(void)
{
    overflow_run(WEFT_OPT_NO_OVERFLOW_HANDLER);
}

static int trivial_main(void *arg)
{
    return weft_checkpoint();
}

/* A loop ran before, then something (here: the program) set SIGSEGV back
 * to its default: the next loop still names the task that overflowed. */
static void overflow_child_after_reset(void)
{
    if (weft_run(trivial_main, NULL, NULL) != 0)
        _exit(21);
    signal(SIGSEGV, SIG_DFL);
    overflow_run(0);
}

static const struct th_exec_entry children[] = {
    {"overflow", overflow_child},
    {"overflow_no_handler", overflow_child_no_handler},
    {"overflow_after_reset", overflow_child_after_reset},
};

static void check_overflow_death(const struct th_child *c, bool want_name)
{
    bool died = WIFSIGNALED(c->status) && (WTERMSIG(c->status) == SIGSEGV ||
                                           WTERMSIG(c->status) == SIGABRT ||
                                           WTERMSIG(c->status) == SIGBUS);
    /* ASan reports a stack overflow itself and exits with 1 */
    if (TH_ASAN && WIFEXITED(c->status) && WEXITSTATUS(c->status) != 0 &&
        WEXITSTATUS(c->status) < 20)
        died = true;
    /* So does TSan's SIGSEGV handler when weft's is not installed: its
     * report, then exit status 66 */
    if (TH_TSAN && WIFEXITED(c->status) && WEXITSTATUS(c->status) == 66 &&
        strstr(c->err, "ThreadSanitizer: stack-overflow"))
        died = true;
    if (!died) {
        th_child_dump(c);
        fail_msg("expected death by SIGSEGV or SIGABRT");
    }
    if (want_name && !strstr(c->err, "deep-diver")) {
        th_child_dump(c);
        fail_msg("stderr does not name the task \"deep-diver\"");
    }
}

/* Run in a fresh exec of this suite: whether earlier tests left a SIGSEGV
 * handler behind must not matter. */
static void test_stack_overflow_dies_naming_the_task(void **state)
{
    struct th_child c;

    th_run_exec_child("overflow", &c);
    print_message("%s", c.err);
    check_overflow_death(&c, !TH_ASAN);
    if (TH_ASAN)
        print_message("(the task name check is skipped under ASan)\n");
}

static void test_stack_overflow_named_after_sigsegv_reset(void **state)
{
    struct th_child c;

    th_run_exec_child("overflow_after_reset", &c);
    print_message("%s", c.err);
    check_overflow_death(&c, !TH_ASAN);
}

static void test_stack_overflow_without_handler_still_dies(void **state)
{
    struct th_child c;

    th_run_exec_child("overflow_no_handler", &c);
    check_overflow_death(&c, false);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_task_current_and_distinct_ids),
    cmocka_unit_test(test_task_ids_not_reused),
    cmocka_unit_test(test_task_names),
    cmocka_unit_test(test_dump_tasks_mentions_named_tasks),
    cmocka_unit_test(test_dump_tasks_outside_loop_is_harmless),
    cmocka_unit_test(test_stack_overflow_dies_naming_the_task),
    cmocka_unit_test(test_stack_overflow_named_after_sigsegv_reset),
    cmocka_unit_test(test_stack_overflow_without_handler_still_dies),
};

TH_MAIN_WITH_CHILDREN(tests, children)
