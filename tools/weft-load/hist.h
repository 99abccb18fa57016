/* SPDX-License-Identifier: MIT */
/*
 * tools/weft-load/hist.h - a latency histogram with HdrHistogram's idea:
 * log-linear buckets (HIST_SUB per power of two), so that every value is
 * kept within 1/HIST_SUB (< 0.8%) of itself, in constant memory (one
 * array of counts, no allocation), and histograms of several cores merge
 * by adding their counts.
 *
 * Values are unsigned integers (weft-load records nanoseconds). Values
 * under HIST_SUB are exact; larger ones share a bucket with their
 * neighbours within 1/HIST_SUB; past 2^HIST_TOP_BITS they fall in the top
 * bucket (the exact maximum is kept apart).
 */
#ifndef WEFT_LOAD_HIST_H
#define WEFT_LOAD_HIST_H

#include <stdint.h>
#include <stdio.h>

#define HIST_SUB_BITS 7
#define HIST_SUB (1u << HIST_SUB_BITS)
#define HIST_TOP_BITS 42 /* 2^42 ns: 73 minutes */
#define HIST_BUCKETS ((HIST_TOP_BITS - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t count, min, max;
    double sum, sumsq; /* for the mean and the standard deviation */
    uint64_t b[HIST_BUCKETS];
};

void hist_init(struct hist *h);

/* The bucket of a value: exact below HIST_SUB, then HIST_SUB buckets per
 * power of two. */
static inline unsigned hist_bucket(uint64_t v)
{
    if (v < HIST_SUB)
        return (unsigned)v;
    unsigned msb = 63u - (unsigned)__builtin_clzll(v);
    if (msb >= HIST_TOP_BITS)
        return HIST_BUCKETS - 1;
    unsigned shift = msb - HIST_SUB_BITS;
    return (shift + 1) * HIST_SUB + (unsigned)((v >> shift) - HIST_SUB);
}

static inline void hist_record(struct hist *h, uint64_t v)
{
    h->b[hist_bucket(v)]++;
    if (v > h->max)
        h->max = v;
    if (v < h->min)
        h->min = v;
    h->count++;
    double d = (double)v;
    h->sum += d;
    h->sumsq += d * d;
}

/* The lowest and the highest value that fall in bucket i. */
uint64_t hist_bucket_low(unsigned i);
uint64_t hist_bucket_high(unsigned i);

/* Add from's records to into's. */
void hist_merge(struct hist *into, const struct hist *from);

/* The value at percentile q (0 < q <= 100): the highest value of the
 * bucket that holds the ceil(q% of count)-th smallest record, never
 * above the maximum nor below the minimum recorded. 0 when empty. Within
 * 1/HIST_SUB above the exact percentile. */
uint64_t hist_percentile(const struct hist *h, double q);
double hist_mean(const struct hist *h);
double hist_stdev(const struct hist *h);

/* The distribution in HdrHistogram's "percentile distribution" text
 * form (Value Percentile TotalCount 1/(1-Percentile)), one line per
 * bucket that holds records, values divided by unit (1000: ns to us).
 * 0 or -errno of the write. */
int hist_write(const struct hist *h, FILE *f, double unit);

#endif
