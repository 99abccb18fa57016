# SPDX-License-Identifier: MIT
"""kv_profile_classes.py N < `perf script -F ip,sym,dso` output.

perf/kv-profile's classes: each sample of a server's `perf record -g`
goes in the first class its call stack matches; prints each class's
share of the server's CPU and its samples per 1,000 of N requests.
"""
import collections
import sys


def classify(stack):
    s = {f for f, _ in stack}
    if "tcp_sendmsg" in s:
        return "k TCP send + loopback delivery"
    if "tcp_recvmsg" in s or "sock_recvmsg" in s:
        if "io_submit_sqes" in s and "io_req_task_submit" not in s:
            return "k receive tried at submission"
        return "k TCP receive"
    if s & {"io_arm_apoll", "__io_arm_poll_handler", "io_arm_poll_handler"}:
        return "k ring: poll arm"
    if s & {"ep_poll", "do_epoll_wait"}:
        return "k epoll_wait"
    if "io_submit_sqes" in s:
        return "k ring: submit (other)"
    if s & {"__io_run_local_work", "io_poll_task_func"}:
        return "k ring: task work (other)"
    if "io_cqring_wait" in s:
        return "k ring: wait"
    if "__do_sys_io_uring_enter" in s:
        return "k ring: io_uring_enter (other)"
    if s & {"ksys_read", "ksys_write"}:
        return "k read/write (other)"
    if stack and stack[0][1].startswith("[kernel"):
        return "k other (syscall entry, interrupts)"
    return "u " + (stack[0][1].split("/")[-1] if stack else "?")


def main():
    n = int(sys.argv[1])
    counts = collections.Counter()
    stack = []
    for line in list(sys.stdin) + [""]:
        line = line.strip()
        if not line:
            if stack:
                counts[classify(stack)] += 1
            stack = []
            continue
        rest = line.split(None, 1)[1] if " " in line else ""
        if "(" in rest:
            sym = rest[: rest.rfind("(")].strip()
            dso = rest[rest.rfind("(") + 1: -1]
        else:
            sym, dso = rest, "?"
        stack.append((sym.split("+")[0], dso))
    total = sum(counts.values()) or 1
    for k, v in counts.most_common():
        print(f"   {k:40s} {100 * v / total:5.1f}%  {v * 1000 / n:6.2f}/1k req")


main()
