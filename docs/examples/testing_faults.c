/* SPDX-License-Identifier: MIT */
/*
 * testing_faults.c - the testing guide's fault injection example: a
 * transfer over a stream pair run under faults. Short transfers and
 * delayed completions must not change what arrives; injected errors
 * must end the transfer with an error, never with wrong bytes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <weft.h>

#define TOTAL (64 * 1024)

static unsigned char byte_at(size_t i)
{
    return (unsigned char)(i * 7 + 3);
}

static int sender(void *arg)
{
    weft_stream *s = arg;
    unsigned char buf[1024];
    int rc = 0;
    for (size_t off = 0; off < TOTAL && rc == 0; off += sizeof buf) {
        for (size_t i = 0; i < sizeof buf; i++)
            buf[i] = byte_at(off + i);
        ssize_t n = weft_stream_send(s, buf, sizeof buf);
        rc = n < 0 ? (int)n : 0;
    }
    weft_stream_close(s); /* the receiver sees the end either way */
    return rc;
}

static int transfer(void *arg)
{
    weft_stream *a, *b;
    int rc = weft_stream_pair(&a, &b);
    if (rc < 0)
        return rc;
    weft_group g;
    weft_group_enter(&g);
    rc = weft_group_spawn(&g, sender, a);
    if (rc < 0)
        weft_stream_close(a);
    unsigned char buf[1000];
    for (size_t got = 0; rc == 0 && got < TOTAL;) {
        size_t want = TOTAL - got < sizeof buf ? TOTAL - got : sizeof buf;
        ssize_t n = weft_stream_recv_exactly(b, buf, want);
        if (n <= 0) {
            rc = n < 0 ? (int)n : -ENODATA;
            break;
        }
        for (size_t i = 0; i < want; i++)
            if (buf[i] != byte_at(got + i))
                rc = -EPROTO; /* a real bug: bytes lost or reordered */
        got += want;
    }
    weft_stream_close(b);
    printf("seed %llu: %llu faults injected, result %s\n",
           (unsigned long long)weft_faults_seed(),
           (unsigned long long)weft_faults_injected(),
           rc ? weft_strerror(rc) : "ok");
    return weft_group_exit(&g, rc);
}

int main(void)
{
    /* Short transfers and late completions: the bytes must all arrive. */
    weft_faults f = {.seed = 1234,
                     .kinds = WEFT_FAULT_SHORT | WEFT_FAULT_DELAY,
                     .rate = 200000};
    weft_options o = {.faults = &f};
    if (weft_run(transfer, NULL, &o) != 0)
        return 1;
    /* Errors too: the transfer may fail, but only with an error. (A
     * failing run prints its seed on stderr, to replay it.) */
    f.kinds = WEFT_FAULT_ALL;
    for (f.seed = 1; f.seed <= 20; f.seed++) {
        int rc = weft_run(transfer, NULL, &o);
        if (rc == -EPROTO)
            return 1;
    }
    return 0;
}
