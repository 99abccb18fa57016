/* SPDX-License-Identifier: MIT */
/*
 * tools/weft-load/hist.c - the latency histogram (hist.h): percentiles,
 * merging, and its text form for plotting.
 */
#include "hist.h"

#include <errno.h>
#include <math.h>
#include <string.h>

void hist_init(struct hist *h)
{
    memset(h, 0, sizeof *h);
    h->min = UINT64_MAX;
}

uint64_t hist_bucket_low(unsigned i)
{
    if (i < 2 * HIST_SUB)
        return i; /* the first two ranges are exact (shift 0) */
    unsigned shift = i / HIST_SUB - 1;
    return (uint64_t)(HIST_SUB + i % HIST_SUB) << shift;
}

uint64_t hist_bucket_high(unsigned i)
{
    if (i == HIST_BUCKETS - 1)
        return UINT64_MAX;
    return hist_bucket_low(i + 1) - 1;
}

void hist_merge(struct hist *into, const struct hist *from)
{
    for (unsigned i = 0; i < HIST_BUCKETS; i++)
        into->b[i] += from->b[i];
    into->count += from->count;
    into->sum += from->sum;
    into->sumsq += from->sumsq;
    if (from->max > into->max)
        into->max = from->max;
    if (from->min < into->min)
        into->min = from->min;
}

uint64_t hist_percentile(const struct hist *h, double q)
{
    if (!h->count)
        return 0;
    double r = ceil(q / 100.0 * (double)h->count);
    uint64_t want = r < 1 ? 1 : r > (double)h->count ? h->count : (uint64_t)r;
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS; i++) {
        seen += h->b[i];
        if (seen >= want) {
            uint64_t v = hist_bucket_high(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

double hist_mean(const struct hist *h)
{
    return h->count ? h->sum / (double)h->count : 0;
}

double hist_stdev(const struct hist *h)
{
    if (h->count < 2)
        return 0;
    double m = hist_mean(h);
    double v = h->sumsq / (double)h->count - m * m;
    return v > 0 ? sqrt(v) : 0;
}

int hist_write(const struct hist *h, FILE *f, double unit)
{
    fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount",
            "1/(1-Percentile)");
    uint64_t seen = 0;
    for (unsigned i = 0; i < HIST_BUCKETS && seen < h->count; i++) {
        if (!h->b[i])
            continue;
        seen += h->b[i];
        uint64_t v = hist_bucket_high(i);
        if (v > h->max)
            v = h->max;
        double p = (double)seen / (double)h->count;
        /* The last line has no 1/(1-p): it would be infinite. */
        if (seen < h->count)
            fprintf(f, "%12.3f %14.12f %10llu %14.2f\n", (double)v / unit, p,
                    (unsigned long long)seen, 1 / (1 - p));
        else
            fprintf(f, "%12.3f %14.12f %10llu\n", (double)v / unit, p,
                    (unsigned long long)seen);
    }
    fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n",
            hist_mean(h) / unit, hist_stdev(h) / unit);
    fprintf(f, "#[Max     = %12.3f, Total count    = %12llu]\n",
            (double)h->max / unit, (unsigned long long)h->count);
    fprintf(f, "#[Buckets = %12u, SubBuckets     = %12u]\n", HIST_BUCKETS,
            HIST_SUB);
    return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}
