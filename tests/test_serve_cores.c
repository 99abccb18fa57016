/* SPDX-License-Identifier: MIT */
/*
 * tests/test_serve_cores.c - weft_serve_cores: one port served from every
 * core, one SO_REUSEPORT listener per core, connections steered to the
 * core of the CPU that received them where the kernel allows it.
 *
 * The clients are plain blocking threads (started from a weft_to_thread
 * worker, so that they can be pinned to a CPU of their own choosing); each
 * sends its number, the handler records the core that served it and echoes
 * the number back. Tests that need two cores skip themselves when the
 * affinity mask has one CPU.
 */
#include "helpers.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <weft/core.h>

enum { NCONN = 64, UNSERVED = 99 };

static unsigned cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return 1;
    return (unsigned)CPU_COUNT(&set);
}

/* The i-th CPU of the mask: the CPU weft_run_cores pins core i to. */
static int nth_cpu(unsigned i)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) < 0)
        return -1;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &set) && i-- == 0)
            return cpu;
    return -1;
}

#define NEED_CORES(n)                                                          \
    do {                                                                       \
        if (cpus() < (n)) {                                                    \
            print_message("skipped: needs %u CPUs in the affinity mask, "      \
                          "has %u\n",                                          \
                          (unsigned)(n), cpus());                              \
            skip();                                                            \
        }                                                                      \
    } while (0)

struct fixture {
    unsigned ncores;
    bool no_steer;
    int client_cpu; /* -1: the clients are not pinned */
    int nconn;
    /* set by on_ready (on core 0), read by the main task on core 0 */
    int port;
    bool steered;
    weft_event ready;
    /* per connection: the core that served it; clients' results */
    _Atomic unsigned served[NCONN];
    atomic_int handled;
    int client_rc;
    int serve_rc;
};

static int handler(weft_stream *s, void *arg)
{
    struct fixture *f = arg;
    uint32_t idx;
    ssize_t n = weft_stream_recv_exactly(s, &idx, sizeof idx);
    if (n < 0)
        return (int)n;
    if (idx >= NCONN)
        return -EPROTO;
    atomic_store(&f->served[idx], weft_core_id());
    atomic_fetch_add(&f->handled, 1);
    n = weft_stream_send(s, &idx, sizeof idx);
    return n < 0 ? (int)n : 0;
}

static void on_ready(int port, bool steered, void *arg)
{
    struct fixture *f = arg;
    CHECK_EQ(weft_core_id(), 0);
    f->port = port;
    f->steered = steered;
    weft_event_set(&f->ready);
}

static int serve_task(void *arg)
{
    struct fixture *f = arg;
    weft_serve_cores_opts o = {
        .cores = f->ncores, .no_steer = f->no_steer, .on_ready = on_ready};
    f->serve_rc = weft_serve_cores("127.0.0.1", 0, handler, f, &o);
    return f->serve_rc == -ECANCELED ? 0 : f->serve_rc;
}

/* ---- blocking clients ---- */

static int client_one(int port, uint32_t idx)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int rc = 0;
    uint32_t back = ~0u;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0 ||
        send(fd, &idx, sizeof idx, MSG_NOSIGNAL) != (ssize_t)sizeof idx)
        rc = -errno;
    else if (recv(fd, &back, sizeof back, MSG_WAITALL) != (ssize_t)sizeof back)
        rc = -EPROTO;
    else if (back != idx)
        rc = -EBADMSG;
    close(fd);
    return rc;
}

static void *clients_thread(void *arg)
{
    struct fixture *f = arg;
    if (f->client_cpu >= 0) {
        cpu_set_t one;
        CPU_ZERO(&one);
        CPU_SET(f->client_cpu, &one);
        if (pthread_setaffinity_np(pthread_self(), sizeof one, &one) != 0) {
            f->client_rc = -EINVAL;
            return NULL;
        }
    }
    for (int i = 0; i < f->nconn && f->client_rc == 0; i++)
        f->client_rc = client_one(f->port, (uint32_t)i);
    return NULL;
}

/* On a worker: a thread of our own (a pool worker's affinity is not ours
 * to change), joined. */
static int run_clients(void *arg)
{
    pthread_t th;
    if (pthread_create(&th, NULL, clients_thread, arg) != 0)
        return -EAGAIN;
    pthread_join(th, NULL);
    return 0;
}

static int main_task(void *arg)
{
    struct fixture *f = arg;
    weft_group g;
    weft_group_enter(&g);
    CHECK_EQ(weft_group_spawn(&g, serve_task, f), 0);
    CHECK_EQ(weft_event_wait(&f->ready), 0);
    CHECK(f->port > 0);
    CHECK_EQ(weft_to_thread(run_clients, f, NULL, 0), 0);
    CHECK_EQ(f->client_rc, 0);
    /* Every connection was answered, so every handler has recorded. */
    CHECK_EQ(atomic_load(&f->handled), f->nconn);
    weft_group_cancel(&g);
    int rc = weft_group_exit(&g, 0);
    CHECK_EQ(rc, 0);
    CHECK_EQ(f->serve_rc, -ECANCELED);
    /* Every listener is closed: the port can be listened on again
     * without SO_REUSEPORT (SO_REUSEADDR only passes over the served
     * connections' TIME_WAIT, never over a listener). */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)f->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(fd, 1), 0);
    close(fd);
    return 0;
}

static void run_fixture(struct fixture *f)
{
    weft_event_init(&f->ready);
    for (int i = 0; i < NCONN; i++)
        atomic_init(&f->served[i], UNSERVED);
    atomic_init(&f->handled, 0);
    th_reset();
    th_guard(TH_GUARD_SECONDS);
    int rc = weft_run_cores(f->ncores, main_task, f, NULL);
    th_guard_off();
    th_assert_clean();
    assert_rc(rc, 0);
}

static unsigned count_on(struct fixture *f, unsigned core)
{
    unsigned k = 0;
    for (int i = 0; i < f->nconn; i++)
        k += atomic_load(&f->served[i]) == core;
    return k;
}

/* ---- tests ---- */

static void test_one_core(void **state)
{
    (void)state;
    struct fixture f = {.ncores = 1, .client_cpu = -1, .nconn = 8};
    run_fixture(&f);
    assert_int_equal(count_on(&f, 0), 8);
    assert_false(f.steered); /* nothing to steer between */
}

/* The kernel's hash spreads 64 connections (from 64 source ports) over
 * both cores: that one core gets none has odds of 2^-63. */
static void test_two_cores_share(void **state)
{
    (void)state;
    NEED_CORES(2);
    struct fixture f = {
        .ncores = 2, .no_steer = true, .client_cpu = -1, .nconn = NCONN};
    run_fixture(&f);
    assert_false(f.steered);
    unsigned on0 = count_on(&f, 0), on1 = count_on(&f, 1);
    print_message("hash: %u connections on core 0, %u on core 1\n", on0, on1);
    assert_int_equal(on0 + on1, NCONN);
    assert_true(on0 > 0 && on1 > 0);
}

/* Steered: a client pinned to core c's CPU is served by core c. */
static void test_steering(void **state)
{
    (void)state;
    NEED_CORES(2);
    for (unsigned c = 0; c < 2; c++) {
        struct fixture f = {.ncores = 2, .client_cpu = nth_cpu(c), .nconn = 16};
        run_fixture(&f);
        if (!f.steered) {
            print_message("skipped: this kernel does not take "
                          "SO_ATTACH_REUSEPORT_CBPF\n");
            skip();
        }
        assert_int_equal(count_on(&f, c), 16);
    }
}

/* Errors at the door. */
static int bad_args_main(void *arg)
{
    (void)arg;
    weft_serve_cores_opts o = {.cores = weft_core_count() + 1};
    CHECK_EQ(weft_serve_cores("127.0.0.1", 0, NULL, NULL, NULL), -EINVAL);
    CHECK_EQ(weft_serve_cores("127.0.0.1", 0, handler, NULL, &o), -EINVAL);
    /* A port someone else holds: the error, no server left behind. */
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    CHECK_EQ(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    CHECK_EQ(listen(fd, 1), 0);
    CHECK_EQ(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    CHECK_EQ(
        weft_serve_cores("127.0.0.1", ntohs(a.sin_port), handler, NULL, NULL),
        -EADDRINUSE);
    close(fd);
    return 0;
}

static void test_bad_args(void **state)
{
    (void)state;
    assert_rc(weft_serve_cores("127.0.0.1", 0, handler, NULL, NULL), -EPERM);
    th_reset();
    th_guard(TH_GUARD_SECONDS);
    int rc = weft_run_cores(cpus() >= 2 ? 2 : 1, bad_args_main, NULL, NULL);
    th_guard_off();
    th_assert_clean();
    assert_rc(rc, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_core),
        cmocka_unit_test(test_two_cores_share),
        cmocka_unit_test(test_steering),
        cmocka_unit_test(test_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
