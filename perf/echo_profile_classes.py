# SPDX-License-Identifier: MIT
"""echo_profile_classes.py NAME RATE SECONDS HZ < `perf script` output.

perf/echo-profile's classes: each sample of an echo server's
`perf record -g` goes in one class, by its leaf first (a copy between
user and kernel memory wherever it is called from), else by the first
match in its call stack; prints each class's share of the server's CPU
and its CPU time per message (samples / HZ over RATE x SECONDS).
"""
import collections
import sys

COPY = ("copy_user", "_copy_to_iter", "_copy_from_iter", "copyin",
        "copyout", "memcpy_orig", "rep_movs")


def classify(stack):
    leaf = stack[0][0] if stack else ""
    if any(k in leaf for k in COPY):
        return "copy (user <-> kernel)"
    s = {f for f, _ in stack}
    if s & {"tcp_sendmsg", "sock_sendmsg", "__sys_sendto"}:
        return "send path (TCP, loopback delivery)"
    if s & {"tcp_recvmsg", "sock_recvmsg"}:
        return "receive path (TCP)"
    if any("io_uring" in f or f.startswith(("io_submit", "io_cqring",
                                            "__io_run", "io_run"))
           for f in s):
        return "io_uring, other"
    if any("epoll" in f or f == "ep_poll" for f in s):
        return "epoll_wait"
    if stack and stack[0][1]:
        return "kernel, other"
    return "user space"


def main():
    name, rate, secs, hz = sys.argv[1], float(sys.argv[2]), float(
        sys.argv[3]), float(sys.argv[4])
    cls = collections.Counter()
    n = 0
    stack = []

    def flush():
        nonlocal n
        if stack:
            cls[classify(stack)] += 1
            n += 1

    for line in sys.stdin:
        line = line.rstrip()
        if not line:
            flush()
            stack = []
            continue
        if line[0] in " \t":
            parts = line.split()
            if len(parts) >= 2:
                sym = parts[1].split("+")[0]
                stack.append((sym, "kernel" in parts[-1]))
    flush()
    if not n or rate <= 0:
        print(f"{name}: no samples")
        return
    per = 1e6 / (hz * rate * secs)
    print(f"{name}: {rate:.0f} msgs/s, {n} samples")
    for c, v in cls.most_common():
        print(f"  {c:38s} {100 * v / n:5.1f}%  {v * per:6.2f} us/msg")
    print(f"  {'total':38s}         {n * per:6.2f} us/msg")


main()
