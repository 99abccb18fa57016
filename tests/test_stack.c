/* SPDX-License-Identifier: MIT */
/*
 * tests/test_stack.c - task stacks that forgive: the default stack holds
 * a 64 KiB buffer in a connection handler; a task that overruns its
 * stack by far dies naming itself (with the stack probes weft exports,
 * and without them); a stack that a deep task waited on is trimmed
 * before an idle task reuses it.
 */
#include "helpers.h"
#include "net_helpers.h"

#include <sys/mman.h>

/* Opaque to the compiler: the big arrays below are used. */
__attribute__((noinline)) void th_stack_use(volatile char *p, size_t n);
__attribute__((noinline)) void th_stack_use(volatile char *p, size_t n)
{
    __asm__ volatile("" : : "r"(p), "r"(n) : "memory");
}

int th_stack_dive_noprobe(void); /* stack_noprobe.c */

/* ---- a 64 KiB buffer on a default stack, in a connection handler ---- */

enum { BIG_BUF = 64 * 1024 };

static int big_handler(weft_stream *conn, void *arg)
{
    char buf[BIG_BUF];
    volatile char *v = buf;
    for (size_t i = 0; i < sizeof buf; i++)
        v[i] = (char)(i * 7);
    for (;;) {
        ssize_t r = weft_stream_recv(conn, buf, sizeof buf);
        if (r <= 0)
            return (int)r;
        th_stack_use(v, sizeof buf);
        ssize_t w = weft_stream_send(conn, buf, (size_t)r);
        if (w < 0)
            return (int)w;
    }
}

static int big_serve(void *arg)
{
    return weft_listener_serve(arg, big_handler, NULL);
}

static int big_buffer_main(void *arg)
{
    weft_listener *l;
    weft_stream *c;
    weft_group g;

    if (!CHECK_EQ(weft_tcp_listen(&l, "127.0.0.1", 0), 0))
        return -EIO;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, big_serve, l), 0);
    if (CHECK_EQ(
            weft_tcp_connect(&c, "127.0.0.1", (uint16_t)weft_listener_port(l)),
            0)) {
        nh_send_str(c, "a frame of 64 KiB");
        nh_expect(c, "a frame of 64 KiB");
        CHECK_EQ(weft_stream_close(c), 0);
    }
    weft_group_cancel(&g);
    weft_group_exit(&g, 0);
    CHECK_EQ(weft_listener_close(l), 0);
    return 0;
}

static void test_handler_with_64k_buffer_on_default_stack(void **state)
{
    run_in_loop(big_buffer_main, NULL); /* NULL: the default options */
}

/* ---- a task that overruns its stack by far ---- */

/* Built here, with the flags weft exports (stack probes). */
__attribute__((noinline)) static int dive_probed(void)
{
    char big[1 << 20];
    volatile char *v = big;
    for (size_t i = 0; i < sizeof big; i++)
        v[i] = (char)i;
    th_stack_use(v, sizeof big);
    return v[12345];
}

static int diver(void *arg)
{
    int (*dive)(void) = (int (*)(void))arg;
    return dive() == 42 ? 0 : -EIO;
}

/* The diver is spawned first, the sleepers after it: their stacks are
 * mapped next, just below the diver's, where its frame reaches. */
static int dive_main(void *arg)
{
    weft_group g;

    weft_group_enter(&g);
    weft_group_spawn_named(&g, "far-diver", diver, arg);
    for (int i = 0; i < 8; i++)
        weft_group_spawn_named(&g, "sleeper", th_task_sleep_forever, NULL);
    return weft_group_exit(&g, 0);
}

static void dive_child(int (*dive)(void))
{
    int rc = weft_run(dive_main, (void *)dive, NULL);
    fprintf(stderr, "TEST: weft_run returned %d after the overrun\n", rc);
    _exit(20);
}

static void dive_child_probed(void)
{
    dive_child(dive_probed);
}

static void dive_child_noprobe(void)
{
    dive_child(th_stack_dive_noprobe);
}

static const struct th_exec_entry children[] = {
    {"dive_probed", dive_child_probed},
    {"dive_noprobe", dive_child_noprobe},
};

static void check_named_death(const char *child)
{
    struct th_child c;

    th_run_exec_child(child, &c);
    print_message("%s", c.err);
    bool died = WIFSIGNALED(c.status) && (WTERMSIG(c.status) == SIGSEGV ||
                                          WTERMSIG(c.status) == SIGABRT);
    /* ASan reports the overflow itself and exits with 1 */
    if (TH_ASAN && WIFEXITED(c.status) && WEXITSTATUS(c.status) != 0 &&
        WEXITSTATUS(c.status) < 20)
        died = true;
    if (!died) {
        th_child_dump(&c);
        fail_msg("expected death by SIGSEGV or SIGABRT");
    }
    if (TH_ASAN) {
        print_message("(the task name check is skipped under ASan)\n");
        return;
    }
    if (!strstr(c.err, "weft: stack overflow in task 'far-diver'")) {
        th_child_dump(&c);
        fail_msg("stderr does not name the task \"far-diver\"");
    }
}

/* Built with stack probes (as weft::weft and weft.pc make a user's code):
 * the frame touches every page from the top down and faults in the
 * guard, before it writes anywhere else. */
static void test_far_overrun_with_probes_names_the_task(void **state)
{
    check_named_death("dive_probed");
}

/* Built without them: the frame skips the guard and its first write lands
 * below, maybe in a neighbour's stack (nothing can stop that write); the
 * fault it ends in, in a guard or an unmapped page, still names the task,
 * whose stack pointer is below its stack. */
static void test_far_overrun_without_probes_names_the_task(void **state)
{
    check_named_death("dive_noprobe");
}

/* ---- a stack a task waited deep on is trimmed when pooled ---- */

struct deep {
    uintptr_t low;   /* the deep task's lowest buffer address */
    bool resident;   /* that page, as the next task on the stack saw it */
    bool same_stack; /* the next task ran on the same stack */
};

static int deep_waiter(void *arg)
{
    struct deep *d = arg;
    char buf[192 * 1024];
    volatile char *v = buf;
    for (size_t i = 0; i < sizeof buf; i++)
        v[i] = (char)i;
    d->low = (uintptr_t)buf;
    CHECK_EQ(weft_checkpoint(), 0); /* waits while deep */
    th_stack_use(v, sizeof buf);
    return 0;
}

static int shallow_after(void *arg)
{
    struct deep *d = arg;
    char here;
    uintptr_t me = (uintptr_t)&here;
    d->same_stack = me > d->low && me - d->low < 256 * 1024;
    long page = sysconf(_SC_PAGESIZE);
    unsigned char vec = 0;
    uintptr_t p = (d->low + (uintptr_t)page) & ~(uintptr_t)(page - 1);
    CHECK_EQ(mincore((void *)p, (size_t)page, &vec), 0);
    d->resident = vec & 1;
    return 0;
}

static int trim_main(void *arg)
{
    weft_group g;

    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, deep_waiter, arg), 0);
    CHECK_EQ(weft_group_exit(&g, 0), 0);
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, shallow_after, arg), 0);
    return weft_group_exit(&g, 0);
}

static void test_deep_stack_is_trimmed_when_pooled(void **state)
{
    struct deep d = {0};

    run_in_loop(trim_main, &d);
    if (!d.same_stack) {
        print_message("the pool gave another stack; nothing to check\n");
        skip();
    }
    assert_false(d.resident);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_handler_with_64k_buffer_on_default_stack),
    cmocka_unit_test(test_far_overrun_with_probes_names_the_task),
    cmocka_unit_test(test_far_overrun_without_probes_names_the_task),
    cmocka_unit_test(test_deep_stack_is_trimmed_when_pooled),
};

TH_MAIN_WITH_CHILDREN(tests, children)
