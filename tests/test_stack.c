/* SPDX-License-Identifier: MIT */
/*
 * tests/test_stack.c - task stacks that forgive: the default stack holds
 * a 64 KiB buffer in a connection handler; a task that overruns its
 * stack by far dies naming itself (with the stack probes weft exports,
 * and without them, and into a neighbour's stack in the same arena); a
 * stack that a deep task waited on is trimmed before an idle task reuses
 * it; more tasks than vm.max_map_count / 2 take a handful of mappings
 * (MADV_GUARD_INSTALL, Linux 6.13+), and where guards split mappings
 * (older kernels, simulated with seccomp) the failure names the limit.
 */
#include "helpers.h"
#include "net_helpers.h"

#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif

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

/* ---- the same into a neighbour in the same arena ---- */

enum { NEIGHBOURS = 8 };
static uintptr_t neighbour_at[NEIGHBOURS];

static int neighbour(void *arg)
{
    char here;
    neighbour_at[(intptr_t)arg] = (uintptr_t)&here;
    return weft_sleep_forever();
}

/* The mapping of /proc/self/maps that holds addr: [*lo, *hi). */
static bool mapping_of(uintptr_t addr, uintptr_t *lo, uintptr_t *hi)
{
    FILE *f = fopen("/proc/self/maps", "r");
    char line[512];
    bool found = false;
    while (f && !found && fgets(line, sizeof line, f))
        found =
            sscanf(line, "%lx-%lx", lo, hi) == 2 && addr >= *lo && addr < *hi;
    if (f)
        fclose(f);
    return found;
}

/* Waits until its neighbours (spawned after it: below it in the arena)
 * sleep, says whether one mapping holds them all, and dives. */
static int neighbour_diver(void *arg)
{
    char here;
    uintptr_t lo, hi;
    weft_checkpoint();
    bool one = mapping_of((uintptr_t)&here, &lo, &hi);
    for (int i = 0; i < NEIGHBOURS; i++)
        one = one && neighbour_at[i] >= lo && neighbour_at[i] < hi &&
              neighbour_at[i] < (uintptr_t)&here;
    fprintf(stderr, "TEST: %s\n",
            one ? "diver and neighbours in one mapping"
                : "the neighbours are in other mappings");
    return th_stack_dive_noprobe() == 42 ? 0 : -EIO;
}

static int neighbour_main(void *arg)
{
    weft_group g;

    weft_group_enter(&g);
    weft_group_spawn_named(&g, "far-diver", neighbour_diver, NULL);
    for (intptr_t i = 0; i < NEIGHBOURS; i++)
        weft_group_spawn_named(&g, "neighbour", neighbour, (void *)i);
    return weft_group_exit(&g, 0);
}

static void dive_child_neighbour(void)
{
    int rc = weft_run(neighbour_main, NULL, NULL);
    fprintf(stderr, "TEST: weft_run returned %d after the overrun\n", rc);
    _exit(20);
}

/* ---- the limit named where guards split mappings ---- */

/* A kernel before 6.13: madvise(MADV_GUARD_INSTALL) fails with EINVAL. */
static bool refuse_guard_install(void)
{
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 0, 3),
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
                 offsetof(struct seccomp_data, args[2])),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, MADV_GUARD_INSTALL, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EINVAL),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    struct sock_fprog prog = {.len = sizeof f / sizeof f[0], .filter = f};
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 &&
           prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) == 0;
}

/* Spawns sleepers until a spawn fails, and prints why: nothing that
 * needs a new mapping (stdio's buffer) is used while at the limit. */
static int until_the_limit(void *arg)
{
    weft_group g;
    int rc = 0;
    long n = 0;

    weft_group_enter(&g);
    while (n < 200000 &&
           (rc = weft_group_spawn(&g, th_task_sleep_forever, NULL)) == 0)
        n++;
    char msg[512];
    int len = snprintf(msg, sizeof msg, "TEST: spawn %ld: %d: %s\n", n + 1, rc,
                       weft_strerror(rc));
    ssize_t w = write(2, msg, (size_t)len);
    (void)w;
    weft_group_cancel(&g);
    weft_group_exit(&g, 0);
    return 0;
}

static void limit_child(void)
{
    if (!refuse_guard_install()) {
        fprintf(stderr, "TEST: no seccomp filter: %s\n", strerror(errno));
        _exit(21);
    }
    int rc = weft_run(until_the_limit, NULL, NULL);
    _exit(rc == 0 ? 0 : 22);
}

static void dive_child_noprobe(void)
{
    dive_child(th_stack_dive_noprobe);
}

static const struct th_exec_entry children[] = {
    {"dive_probed", dive_child_probed},
    {"dive_noprobe", dive_child_noprobe},
    {"dive_neighbour", dive_child_neighbour},
    {"limit", limit_child},
};

static void check_named_death(const char *child, struct th_child *out)
{
    struct th_child c;

    th_run_exec_child(child, &c);
    if (out)
        *out = c;
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
    check_named_death("dive_probed", NULL);
}

/* Built without them: the frame skips the guard and its first write lands
 * below, maybe in a neighbour's stack (nothing can stop that write); the
 * fault it ends in, in a guard or an unmapped page, still names the task,
 * whose stack pointer is below its stack. */
static void test_far_overrun_without_probes_names_the_task(void **state)
{
    check_named_death("dive_noprobe", NULL);
}

/* The kernel puts guards in without splitting a mapping (Linux 6.13+). */
static bool have_guard_install(void)
{
    long page = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    bool ok = madvise(p, (size_t)page, MADV_GUARD_INSTALL) == 0;
    munmap(p, (size_t)page * 2);
    return ok;
}

/* Spawned after the diver, its neighbours are carved just below it in
 * the same arena (one mapping, with MADV_GUARD_INSTALL): the frame of
 * code built without probes lands in their stacks, and the fault it ends
 * in, in one of their guards, still names the diver. */
static void test_far_overrun_into_a_neighbour_in_the_same_arena(void **state)
{
    struct th_child c;
    check_named_death("dive_neighbour", &c);
    if (!have_guard_install()) {
        print_message("no MADV_GUARD_INSTALL (Linux 6.13+): a guard splits "
                      "the arena\n");
        skip();
    }
    if (!strstr(c.err, "TEST: diver and neighbours in one mapping")) {
        th_child_dump(&c);
        fail_msg("the diver's neighbours are not in its arena's mapping");
    }
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

/* ---- more tasks than vm.max_map_count / 2 ---- */

static long read_sysctl(const char *path)
{
    FILE *f = fopen(path, "r");
    long v = -1;
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = -1;
        fclose(f);
    }
    return v;
}

static long maps_now(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    long n = 0;
    int ch;
    while (f && (ch = fgetc(f)) != EOF)
        n += ch == '\n';
    if (f)
        fclose(f);
    return n;
}

struct many {
    long n, spawned;
    long maps_before, maps_during;
};

static int many_main(void *arg)
{
    struct many *m = arg;
    weft_group g;

    m->maps_before = maps_now();
    weft_group_enter(&g);
    for (; m->spawned < m->n; m->spawned++)
        if (!CHECK_EQ(weft_group_spawn(&g, th_task_sleep_forever, NULL), 0))
            break;
    CHECK_EQ(weft_checkpoint(), 0); /* every one of them sleeps */
    m->maps_during = maps_now();
    weft_group_cancel(&g);
    return weft_group_exit(&g, 0);
}

/* 40,000 sleeping tasks (more than the 32,765 stacks of two mappings
 * each that the default limit allows) add a few dozen mappings. */
static void test_more_tasks_than_half_the_map_limit_take_few_maps(void **state)
{
    if (TH_UNDER_VALGRIND()) {
        print_message("40,000 tasks are too slow under Valgrind\n");
        skip();
    }
    if (!have_guard_install()) {
        print_message("no MADV_GUARD_INSTALL (Linux 6.13+): two mappings a "
                      "stack\n");
        skip();
    }
    long max = read_sysctl("/proc/sys/vm/max_map_count");
    struct many m = {.n = 40000};
    if (max / 2 + 1000 > m.n)
        m.n = max / 2 + 1000 < 200000 ? max / 2 + 1000 : 200000;
    run_in_loop(many_main, &m);
    print_message("%ld tasks: %ld mappings before, %ld while they slept "
                  "(vm.max_map_count %ld)\n",
                  m.spawned, m.maps_before, m.maps_during, max);
    assert_int_equal(m.spawned, m.n);
    assert_true(m.maps_during - m.maps_before < 1000);
}

/* Where a guard splits a mapping (mprotect, before Linux 6.13), a spawn
 * at the limit fails with -ENOMEM, and weft_strerror names
 * vm.max_map_count and the command that raises it. */
static void test_map_limit_is_named_where_guards_split_maps(void **state)
{
    long max = read_sysctl("/proc/sys/vm/max_map_count");
    if (TH_UNDER_VALGRIND() || TH_TSAN || TH_ASAN) {
        print_message("~32,000 stacks take tens of seconds under "
                      "sanitizers and Valgrind\n");
        skip();
    }
    if (max > 1000000) {
        print_message("vm.max_map_count is raised here (%ld)\n", max);
        skip();
    }
    struct th_child c;
    th_run_exec_child("limit", &c);
    print_message("%s", c.err);
    th_assert_child_ok(&c);
    if (!strstr(c.err, ": -12: no stack for a task: ") ||
        !strstr(c.err, "vm.max_map_count=") ||
        !strstr(c.err, "sysctl -w vm.max_map_count=")) {
        th_child_dump(&c);
        fail_msg("the failure does not name vm.max_map_count");
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_handler_with_64k_buffer_on_default_stack),
    cmocka_unit_test(test_far_overrun_with_probes_names_the_task),
    cmocka_unit_test(test_far_overrun_without_probes_names_the_task),
    cmocka_unit_test(test_far_overrun_into_a_neighbour_in_the_same_arena),
    cmocka_unit_test(test_deep_stack_is_trimmed_when_pooled),
    cmocka_unit_test(test_more_tasks_than_half_the_map_limit_take_few_maps),
    cmocka_unit_test(test_map_limit_is_named_where_guards_split_maps),
};

TH_MAIN_WITH_CHILDREN(tests, children)
