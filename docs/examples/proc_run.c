/* SPDX-License-Identifier: MIT */
/*
 * proc_run.c - child processes: weft_process_run feeds `sort` and
 * collects its output; weft_process_open talks to `tr` through its pipes;
 * a deadline stops a `sleep` that would run too long (the child is
 * killed and reaped before the call returns). It prints:
 *
 *     sort said: apple banana cherry (exit 0)
 *     tr said: HELLO
 *     sleep 100: cancelled after 50 ms, killed and reaped
 *
 * Build: part of the docs' examples (example_proc_run); exits 0 on success.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <weft.h>

static int run_sort(void)
{
    const char *argv[] = {"sort", NULL};
    const char *input = "cherry\napple\nbanana\n";
    char *out;
    int status;
    int rc = weft_process_run(argv, input, strlen(input), &out, NULL, NULL,
                              NULL, &status);
    if (rc < 0) /* -ENOENT: no sort on PATH */
        return rc;
    for (char *c = out; *c; c++)
        if (*c == '\n')
            *c = c[1] ? ' ' : '\0';
    printf("sort said: %s (exit %d)\n", out, WEXITSTATUS(status));
    int ok = strcmp(out, "apple banana cherry") == 0 && status == 0;
    free(out);
    return ok ? 0 : -EPROTO;
}

static int talk_to_tr(void)
{
    const char *argv[] = {"tr", "a-z", "A-Z", NULL};
    weft_process *p;
    int rc = weft_process_open(&p, argv, NULL); /* pipes for 0, 1, 2 */
    if (rc < 0)
        return rc;
    char line[64];
    ssize_t n = weft_stream_send(weft_process_stdin(p), "hello\n", 6);
    if (n >= 0)
        n = weft_stream_send_eof(weft_process_stdin(p));
    if (n >= 0)
        n = weft_stream_recv_until(weft_process_stdout(p), line,
                                   sizeof line - 1, "\n", 1);
    if (n >= 0) {
        line[n] = '\0';
        printf("tr said: %s\n", line);
        n = weft_process_wait(p); /* its wait status */
    }
    weft_process_close(p); /* always: reaps it, closes the pipes */
    return n < 0 ? (int)n : strcmp(line, "HELLO") == 0 ? 0 : -EPROTO;
}

static int stop_sleep(void)
{
    const char *argv[] = {"sleep", "100", NULL};
    weft_scope s;
    weft_move_on_after(&s, 50 * WEFT_MSEC);
    int rc = weft_process_run(argv, NULL, 0, NULL, NULL, NULL, NULL, NULL);
    rc = weft_scope_exit(&s, rc);
    if (rc < 0)
        return rc;
    printf("sleep 100: cancelled after 50 ms, killed and reaped\n");
    return weft_scope_cancelled_caught(&s) ? 0 : -EPROTO;
}

static int main_task(void *arg)
{
    (void)arg;
    int rc = run_sort();
    if (rc == 0)
        rc = talk_to_tr();
    if (rc == 0)
        rc = stop_sleep();
    return rc;
}

int main(void)
{
    int rc = weft_run(main_task, NULL, NULL);
    if (rc < 0)
        fprintf(stderr, "proc_run: %s\n", weft_strerror(rc));
    return rc < 0 ? 1 : 0;
}
