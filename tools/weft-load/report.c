/* SPDX-License-Identifier: MIT */
/*
 * tools/weft-load/report.c - what a run prints: a summary like wrk's, or
 * one JSON object (--json); the latency distribution for plotting
 * (--hist) and a plot of it by gnuplot (--plot).
 */
#include "load.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *const mode_names[] = {"http", "tcp", "udp"};

/* A duration in ns, as wrk prints it: 812.00us, 1.23ms, 1.00s. */
static const char *dur(char *buf, size_t n, double ns)
{
    if (ns < 1e6)
        snprintf(buf, n, "%.2fus", ns / 1e3);
    else if (ns < 1e9)
        snprintf(buf, n, "%.2fms", ns / 1e6);
    else
        snprintf(buf, n, "%.2fs", ns / 1e9);
    return buf;
}

static const char *size(char *buf, size_t n, double b)
{
    const char *u[] = {"B", "KB", "MB", "GB", "TB"};
    int i = 0;
    while (b >= 1024 && i < 4) {
        b /= 1024;
        i++;
    }
    snprintf(buf, n, "%.2f%s", b, u[i]);
    return buf;
}

static const double pcts[] = {50, 75, 90, 99, 99.9, 99.99};

void wl_report_human(const struct wl_opts *o, const struct wl_result *r)
{
    char a[32], b[32], c[32];
    const struct hist *h = &r->hist;
    const char *what = o->mode == WL_HTTP ? "requests" : "messages";
    printf("Running %.2fs test @ %s (%s)", r->secs, o->url, o->addr);
    if (o->warmup > 0)
        printf(" after a %.2fs warm-up", o->warmup);
    printf("\n");
    printf("  %u cores and %u connections, ", o->cores, o->conns);
    if (o->rate)
        printf("open loop at %.0f %s/s\n", o->rate, what);
    else
        printf("closed loop, %u in flight each\n", o->pipeline);
    printf("  Latency   mean %s, stdev %s, max %s\n",
           dur(a, sizeof a, hist_mean(h)), dur(b, sizeof b, hist_stdev(h)),
           dur(c, sizeof c, (double)h->max));
    printf("  Latency Distribution%s\n",
           o->rate ? " (from each request's intended send time)" : "");
    for (size_t i = 0; i < sizeof pcts / sizeof *pcts; i++)
        printf("  %7g%%  %s\n", pcts[i],
               dur(a, sizeof a, (double)hist_percentile(h, pcts[i])));
    printf("  %llu %s in %.2fs, %s read, %s written\n",
           (unsigned long long)r->requests, what, r->secs,
           size(a, sizeof a, (double)r->bytes_in),
           size(b, sizeof b, (double)r->bytes_out));
    if (r->errors) {
        printf("  Errors:");
        for (int e = 0; e < WL_E_KINDS; e++)
            if (r->err[e])
                printf(" %s %llu", wl_err_names[e],
                       (unsigned long long)r->err[e]);
        printf("\n");
    }
    double secs = r->secs > 0 ? r->secs : 1, cpu = r->cpu_user + r->cpu_sys;
    printf("%s/sec: %.2f\n", o->mode == WL_HTTP ? "Requests" : "Messages",
           (double)r->requests / secs);
    printf("Transfer/sec: %s\n", size(a, sizeof a, (double)r->bytes_in / secs));
    printf("CPU: %.2fs user, %.2fs system: %.0f %s per CPU-second%s\n",
           r->cpu_user, r->cpu_sys, cpu > 0 ? (double)r->requests / cpu : 0.0,
           what, o->spin ? " (spinning)" : "");
    if (o->server_pid)
        printf(
            "Server (pid %d): %s of CPU per %s, %.0f%% of a CPU\n",
            o->server_pid,
            dur(a, sizeof a,
                r->requests ? r->server_cpu * 1e9 / (double)r->requests : 0.0),
            o->mode == WL_HTTP ? "request" : "message",
            100 * r->server_cpu / secs);
}

/* A JSON string: quotes, backslashes and control bytes escaped. */
static void json_str(const char *s)
{
    putchar('"');
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            printf("\\%c", ch);
        else if (ch < 0x20)
            printf("\\u%04x", ch);
        else
            putchar(ch);
    }
    putchar('"');
}

void wl_report_json(const struct wl_opts *o, const struct wl_result *r)
{
    const struct hist *h = &r->hist;
    double secs = r->secs > 0 ? r->secs : 1, cpu = r->cpu_user + r->cpu_sys;
    printf("{\"mode\":\"%s\",\"url\":", mode_names[o->mode]);
    json_str(o->url);
    printf(",\"address\":");
    json_str(o->addr);
    printf(",\"cores\":%u,\"connections\":%u,\"pipeline\":%u,\"rate\":%.3f,"
           "\"requests\":%llu,\"errors\":%llu,\"errors_by_kind\":{",
           o->cores, o->conns, o->pipeline, o->rate,
           (unsigned long long)r->requests, (unsigned long long)r->errors);
    for (int e = 0; e < WL_E_KINDS; e++)
        printf("%s\"%s\":%llu", e ? "," : "", wl_err_names[e],
               (unsigned long long)r->err[e]);
    printf("},\"status\":{");
    for (int s = 1; s < 6; s++)
        printf("%s\"%dxx\":%llu", s > 1 ? "," : "", s,
               (unsigned long long)r->status[s]);
    printf("},\"duration_s\":%.6f,\"rps\":%.3f,\"bytes\":%llu,"
           "\"bytes_sent\":%llu,",
           r->secs, (double)r->requests / secs, (unsigned long long)r->bytes_in,
           (unsigned long long)r->bytes_out);
    printf("\"latency_us\":{\"mean\":%.3f,\"stdev\":%.3f,\"p50\":%.3f,"
           "\"p75\":%.3f,\"p90\":%.3f,\"p99\":%.3f,\"p999\":%.3f,"
           "\"p9999\":%.3f,\"max\":%.3f},",
           hist_mean(h) / 1e3, hist_stdev(h) / 1e3,
           (double)hist_percentile(h, 50) / 1e3,
           (double)hist_percentile(h, 75) / 1e3,
           (double)hist_percentile(h, 90) / 1e3,
           (double)hist_percentile(h, 99) / 1e3,
           (double)hist_percentile(h, 99.9) / 1e3,
           (double)hist_percentile(h, 99.99) / 1e3, (double)h->max / 1e3);
    printf("\"cpu_s\":{\"user\":%.3f,\"system\":%.3f},"
           "\"requests_per_cpu_s\":%.1f,\"warmup_s\":%.3f,\"spin\":%s",
           r->cpu_user, r->cpu_sys, cpu > 0 ? (double)r->requests / cpu : 0.0,
           o->warmup, o->spin ? "true" : "false");
    if (o->server_pid)
        printf(",\"server_pid\":%d,\"server_cpu_s\":%.6f,"
               "\"server_ns_per_msg\":%.1f,\"server_util\":%.4f",
               o->server_pid, r->server_cpu,
               r->requests ? r->server_cpu * 1e9 / (double)r->requests : 0.0,
               r->server_cpu / secs);
    printf("}\n");
    fflush(stdout);
}

int wl_write_hist(const struct wl_opts *o, const struct wl_result *r,
                  const char *path)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return -errno;
    fprintf(f, "# weft-load %s: latency in microseconds%s\n", o->url,
            o->rate ? " (from each request's intended send time)" : "");
    int rc = hist_write(&r->hist, f, 1e3);
    if (fclose(f) != 0 && rc == 0)
        rc = -errno;
    return rc;
}

/* gnuplot's script: latency over 1/(1-percentile) on a log scale, the
 * form HdrHistogram's plots take. */
static char *plot_script(const struct wl_opts *o, const char *data)
{
    const char *dot = strrchr(o->plot_file, '.');
    bool png = dot && strcmp(dot, ".png") == 0;
    char *s = NULL;
    if (asprintf(&s,
                 "set terminal %s size 900,560\n"
                 "set output '%s'\n"
                 "set title 'weft-load: latency by percentile'\n"
                 "set logscale x\n"
                 "unset xtics\n"
                 /* a tic label is a format: "%%" is a percent sign */
                 "set xtics ('0%%%%' 1, '90%%%%' 10, '99%%%%' 100, "
                 "'99.9%%%%' 1000, '99.99%%%%' 10000, '99.999%%%%' 100000)\n"
                 "set xlabel 'percentile'\n"
                 "set ylabel 'latency (us)'\n"
                 "set grid\n"
                 "plot '%s' using 4:1 with lines lw 2 title '%s'\n",
                 png ? "pngcairo" : "svg", o->plot_file, data, o->url) < 0)
        return NULL;
    return s;
}

int wl_plot(const struct wl_opts *o, const struct wl_result *r)
{
    char data[] = "/tmp/weft-load-hist.XXXXXX";
    int fd = mkstemp(data);
    if (fd < 0)
        return -errno;
    close(fd);
    int rc = wl_write_hist(o, r, data);
    char *script = rc == 0 ? plot_script(o, data) : NULL;
    if (script) {
        const char *argv[] = {"gnuplot", NULL};
        char *err = NULL;
        int status = 0;
        rc = weft_process_run(argv, script, strlen(script), NULL, NULL, &err,
                              NULL, &status);
        if (rc == -ENOENT)
            fprintf(stderr, "weft-load: --plot needs gnuplot (Debian: "
                            "apt-get install gnuplot-nox); the data is in "
                            "--hist FILE\n");
        else if (rc == 0 && status != 0)
            fprintf(stderr, "weft-load: gnuplot failed: %s\n", err ? err : "");
        if (rc == 0 && status != 0)
            rc = -EIO;
        free(err);
        free(script);
    }
    unlink(data);
    return rc;
}
