/* SPDX-License-Identifier: MIT */
/*
 * tools/weft-load/options.c - the command line, the URL, and the request
 * bytes (built once; every request of the run sends them as they are).
 */
#include "load.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: weft-load [options] URL\n"
    "  URL: http[s]://HOST[:PORT][/PATH], tcp://HOST:PORT or "
    "udp://HOST:PORT\n"
    "       (HOST: a name, an IPv4 address or [an IPv6 address])\n"
    "  -c, --connections N  connections, spread over the cores (10)\n"
    "  -d, --duration S     seconds to run (10, unless -n is given)\n"
    "  -n, --requests N     requests in all (with -d: whichever ends first)\n"
    "  -t, --cores N        cores (default: every CPU the process may use)\n"
    "  -R, --rate R         open loop: R requests/s in all, latency from\n"
    "                       each request's intended send time\n"
    "  -p, --pipeline N     requests (echo: messages) in flight per\n"
    "                       connection, closed loop only (1)\n"
    "  -H, --header 'K: V'  add a request header (repeatable)\n"
    "  -m, --method M       request method (GET; POST with --body)\n"
    "      --body FILE      send FILE as the request body\n"
    "  -s, --size B         echo message size in bytes (64)\n"
    "      --timeout S      a response within S seconds, or an error (2)\n"
    "      --cacert FILE    https: verify the server against FILE (PEM)\n"
    "  -k, --insecure       https: do not verify the server's certificate\n"
    "      --json           one JSON object on stdout instead of the summary\n"
    "      --hist FILE      the latency distribution, for plotting\n"
    "      --plot FILE      latency by percentile, .svg or .png (gnuplot)\n"
    "      --no-multishot   one receive submitted per response (for\n"
    "                       comparison; default: a multishot receive)\n"
    "      --warmup S       run S seconds first, not counted: the report\n"
    "                       covers the -d seconds after them (0)\n"
    "      --spin           never sleep when no response is ready: each\n"
    "                       core polls its ring in a loop, so a server never\n"
    "                       pays to wake the generator from idle; costs all\n"
    "                       of every core it runs on (its CPU figures then\n"
    "                       say nothing about its cost per request). The\n"
    "                       default with --rate: requests go out when due,\n"
    "                       and the generator's own wake-up from idle is not\n"
    "                       counted in the latencies\n"
    "      --no-spin        sleep when idle, also with --rate\n"
    "      --server-pid PID also report that process's CPU time per\n"
    "                       request and its share of a CPU over the window\n"
    "                       (/proc/PID/schedstat)\n"
    "  SIGUSR1: print \"MARK msgs=<responses so far, warm-up included>\n"
    "           ns=<CLOCK_MONOTONIC>\" on stderr at once\n"
    "  -q, --quiet          no progress line\n";

static _Noreturn void usage(const char *msg, const char *arg)
{
    if (msg)
        fprintf(stderr, "weft-load: %s%s%s\n", msg, arg ? ": " : "",
                arg ? arg : "");
    fputs(usage_text, stderr);
    exit(2);
}

static double number(const char *s, const char *what, double min)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= min))
        usage(what, s);
    return v;
}

/* scheme://host[:port][/path] */
static void parse_url(struct wl_opts *o, const char *url)
{
    const char *p = strstr(url, "://");
    if (!p)
        usage("not a URL (http://, https://, tcp:// or udp://)", url);
    size_t sl = (size_t)(p - url);
    if (sl == 4 && strncasecmp(url, "http", 4) == 0) {
        o->mode = WL_HTTP;
    } else if (sl == 5 && strncasecmp(url, "https", 5) == 0) {
        o->mode = WL_HTTP;
        o->tls = true;
    } else if (sl == 3 && strncasecmp(url, "tcp", 3) == 0)
        o->mode = WL_TCP;
    else if (sl == 3 && strncasecmp(url, "udp", 3) == 0)
        o->mode = WL_UDP;
    else
        usage("unknown scheme (http://, https://, tcp:// or udp://)", url);
    p += 3;
    const char *h = p, *he;
    if (*p == '[') { /* [IPv6] */
        h = p + 1;
        he = strchr(h, ']');
        if (!he)
            usage("no ']' after an IPv6 address", url);
        p = he + 1;
    } else {
        he = p + strcspn(p, ":/?");
        p = he;
    }
    if (he == h || (size_t)(he - h) >= sizeof o->host)
        usage("no host in the URL", url);
    memcpy(o->host, h, (size_t)(he - h));
    o->host[he - h] = 0;
    long port = o->tls ? 443 : o->mode == WL_HTTP ? 80 : -1;
    if (*p == ':') {
        char *end;
        port = strtol(p + 1, &end, 10);
        if (end == p + 1 || port < 1 || port > 65535)
            usage("bad port in the URL", url);
        p = end;
    }
    if (port < 0)
        usage("tcp:// and udp:// need a port", url);
    o->port = (uint16_t)port;
    if (*p && *p != '/' && *p != '?')
        usage("bad URL", url);
    o->path = *p == '/' ? p : "/";
    if (*p == '?') { /* "http://h?q": the target is "/?q" */
        char *t = malloc(strlen(p) + 2);
        if (!t)
            usage("out of memory", NULL);
        t[0] = '/';
        strcpy(t + 1, p);
        o->path = t;
    }
}

static void read_body(struct wl_opts *o)
{
    FILE *f = fopen(o->body_file, "rb");
    if (!f)
        usage("cannot open the body file", o->body_file);
    size_t cap = 4096, n = 0;
    char *b = malloc(cap);
    while (b) {
        n += fread(b + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *nb = realloc(b, cap *= 2);
        if (!nb)
            free(b);
        b = nb;
    }
    bool bad = ferror(f);
    fclose(f);
    if (!b || bad)
        usage("cannot read the body file", o->body_file);
    o->body = b;
    o->body_len = n;
}

enum {
    O_BODY = 256,
    O_TIMEOUT,
    O_JSON,
    O_HIST,
    O_PLOT,
    O_CACERT,
    O_NO_MULTISHOT,
    O_WARMUP,
    O_SPIN,
    O_SERVER_PID,
    O_NO_SPIN
};

static const struct option longs[] = {
    {"connections", required_argument, 0, 'c'},
    {"duration", required_argument, 0, 'd'},
    {"requests", required_argument, 0, 'n'},
    {"cores", required_argument, 0, 't'},
    {"threads", required_argument, 0, 't'},
    {"rate", required_argument, 0, 'R'},
    {"pipeline", required_argument, 0, 'p'},
    {"depth", required_argument, 0, 'p'},
    {"header", required_argument, 0, 'H'},
    {"method", required_argument, 0, 'm'},
    {"size", required_argument, 0, 's'},
    {"quiet", no_argument, 0, 'q'},
    {"help", no_argument, 0, 'h'},
    {"body", required_argument, 0, O_BODY},
    {"timeout", required_argument, 0, O_TIMEOUT},
    {"json", no_argument, 0, O_JSON},
    {"hist", required_argument, 0, O_HIST},
    {"plot", required_argument, 0, O_PLOT},
    {"cacert", required_argument, 0, O_CACERT},
    {"insecure", no_argument, 0, 'k'},
    {"no-multishot", no_argument, 0, O_NO_MULTISHOT},
    {"warmup", required_argument, 0, O_WARMUP},
    {"spin", no_argument, 0, O_SPIN},
    {"no-spin", no_argument, 0, O_NO_SPIN},
    {"server-pid", required_argument, 0, O_SERVER_PID},
    {0, 0, 0, 0}};

/* One option; false if it is not one. */
static bool option(struct wl_opts *o, int c, bool *quiet)
{
    switch (c) {
    case 'c':
        o->conns = (unsigned)number(optarg, "bad -c", 1);
        break;
    case 'd':
        o->secs = number(optarg, "bad -d", 0.001);
        break;
    case 'n':
        o->nreq = (uint64_t)number(optarg, "bad -n", 1);
        break;
    case 't':
        o->cores = (unsigned)number(optarg, "bad -t", 1);
        break;
    case 'R':
        o->rate = number(optarg, "bad --rate", 0.001);
        break;
    case 'p':
        o->pipeline = (unsigned)number(optarg, "bad --pipeline", 1);
        break;
    case 'H':
        o->headers[o->nheaders++] = optarg;
        break;
    case 'm':
        o->method = optarg;
        break;
    case 's':
        o->msg_size = (size_t)number(optarg, "bad --size", 1);
        break;
    case 'q':
        *quiet = true;
        break;
    case O_BODY:
        o->body_file = optarg;
        break;
    case O_TIMEOUT:
        o->timeout = (weft_time)(number(optarg, "bad --timeout", 0.001) * 1e9);
        break;
    case O_JSON:
        o->json = true;
        break;
    case O_HIST:
        o->hist_file = optarg;
        break;
    case O_PLOT:
        o->plot_file = optarg;
        break;
    case O_CACERT:
        o->cacert = optarg;
        break;
    case 'k':
        o->insecure = true;
        break;
    case O_NO_MULTISHOT:
        o->no_multishot = true;
        break;
    case O_WARMUP:
        o->warmup = number(optarg, "bad --warmup", 0);
        break;
    case O_SPIN:
        o->spin = true;
        break;
    case O_NO_SPIN:
        o->no_spin = true;
        break;
    case O_SERVER_PID:
        o->server_pid = (int)number(optarg, "bad --server-pid", 1);
        break;
    default:
        return false;
    }
    return true;
}

int wl_parse_args(struct wl_opts *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->conns = 10;
    o->pipeline = 1;
    o->msg_size = 64;
    o->timeout = 2 * WEFT_SEC;
    o->headers = calloc((size_t)argc, sizeof *o->headers);
    if (!o->headers)
        usage("out of memory", NULL);
    bool quiet = false;
    int c;
    while ((c = getopt_long(argc, argv, "c:d:n:t:R:p:H:m:s:kqh", longs,
                            NULL)) != -1) {
        if (c == 'h') {
            fputs(usage_text, stdout);
            exit(0);
        }
        if (!option(o, c, &quiet))
            usage(NULL, NULL);
    }
    if (optind != argc - 1)
        usage(optind < argc ? "one URL only" : "no URL", NULL);
    o->url = argv[optind];
    parse_url(o, o->url);
    if (!o->secs && !o->nreq)
        o->secs = 10;
    if (o->no_spin)
        o->spin = false;
    else if (o->rate)
        o->spin = true; /* an open loop sends on time */
    if (o->rate && o->pipeline > 1)
        usage("--rate sends one request at a time per connection: "
              "no --pipeline",
              NULL);
    if (o->nreq && o->nreq < o->conns)
        o->conns = (unsigned)o->nreq; /* no connection without work */
    if (o->body_file)
        read_body(o);
    if (!o->method)
        o->method = o->body ? "POST" : "GET";
    o->head = strcasecmp(o->method, "HEAD") == 0;
    if ((o->cacert || o->insecure) && !o->tls)
        usage("--cacert and --insecure are for https:// URLs", NULL);
    if (o->server_pid) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/schedstat", o->server_pid);
        if (access(path, R_OK) != 0)
            usage("--server-pid: cannot read", path);
    }
    o->progress = !quiet && isatty(STDERR_FILENO);
    return 0;
}

static bool has_header(const struct wl_opts *o, const char *name)
{
    size_t n = strlen(name);
    for (unsigned i = 0; i < o->nheaders; i++)
        if (strncasecmp(o->headers[i], name, n) == 0 && o->headers[i][n] == ':')
            return true;
    return false;
}

/* The HTTP request: request line, Host, -H lines, Content-Length, body. */
static char *http_request(const struct wl_opts *o, size_t *len)
{
    size_t cap = strlen(o->method) + strlen(o->path) + strlen(o->host) + 128 +
                 o->body_len;
    for (unsigned i = 0; i < o->nheaders; i++)
        cap += strlen(o->headers[i]) + 2;
    char *r = malloc(cap), *w = r;
    if (!r)
        return NULL;
    w += sprintf(w, "%s %s HTTP/1.1\r\n", o->method, o->path);
    if (!has_header(o, "host")) {
        bool v6 = strchr(o->host, ':') != NULL;
        w += sprintf(w, "Host: %s%s%s", v6 ? "[" : "", o->host, v6 ? "]" : "");
        if (o->port != (o->tls ? 443 : 80))
            w += sprintf(w, ":%u", o->port);
        w += sprintf(w, "\r\n");
    }
    for (unsigned i = 0; i < o->nheaders; i++)
        w += sprintf(w, "%s\r\n", o->headers[i]);
    if (o->body && !has_header(o, "content-length"))
        w += sprintf(w, "Content-Length: %zu\r\n", o->body_len);
    w += sprintf(w, "\r\n");
    if (o->body_len)
        memcpy(w, o->body, o->body_len);
    *len = (size_t)(w - r) + o->body_len;
    return r;
}

int wl_build_batch(struct wl_opts *o)
{
    char *one;
    if (o->mode == WL_HTTP) {
        one = http_request(o, &o->req_len);
    } else {
        o->req_len = o->msg_size;
        one = malloc(o->msg_size);
        for (size_t i = 0; one && i < o->msg_size; i++)
            one[i] = (char)('a' + i % 26);
    }
    if (!one)
        return -ENOMEM;
    o->batch = malloc(o->req_len * o->pipeline);
    if (!o->batch) {
        free(one);
        return -ENOMEM;
    }
    for (unsigned i = 0; i < o->pipeline; i++)
        memcpy(o->batch + i * o->req_len, one, o->req_len);
    free(one);
    return 0;
}
