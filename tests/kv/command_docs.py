# SPDX-License-Identifier: MIT
"""command_docs.py PORT - write docs/examples/weft-kv/command_docs.c to
stdout: for every command and subcommand in commands.c's tables, the
COMMAND INFO entry and the COMMAND DOCS value that the redis-server on
PORT (Debian's 7.0) gives for it, as RESP2 bytes. A container's entry
(CONFIG, CLIENT, COMMAND) lists only the subcommands weft-kv has, in its
table's order. kv_test.py's compare test runs this against its reference
redis-server and fails when the checked-in file says other bytes:

    python3 tests/kv/command_docs.py 6379 > docs/examples/weft-kv/command_docs.c
    scripts/check-format --fix docs/examples/weft-kv/command_docs.c
"""
import os
import re
import socket
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
COMMANDS_C = os.path.join(HERE, "..", "..", "docs", "examples", "weft-kv",
                          "commands.c")


def names():
    """The names of commands.c's two tables, in their order."""
    src = open(COMMANDS_C).read()
    return re.findall(r'^\s*\{"([a-z|]+)", -?\d+, KV_', src, re.M)


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""

    def ask(self, *args):
        req = b"*%d\r\n" % len(args) + b"".join(
            b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
        self.s.sendall(req)
        while True:
            try:
                node, end = parse(self.buf, 0)
                self.buf = self.buf[end:]
                return node
            except IndexError:
                d = self.s.recv(65536)
                if not d:
                    raise EOFError("redis-server closed the connection")
                self.buf += d


def parse(b, i):
    """One RESP2 reply at b[i:]: ((raw bytes, children), end); IndexError
    when b holds only part of it."""
    j = b.find(b"\r\n", i)
    if j < 0:
        raise IndexError
    t, n = b[i:i + 1], b[i + 1:j]
    if t in (b"+", b"-", b":"):
        return (b[i:j + 2], None), j + 2
    if t == b"$":
        end = j + 2 if int(n) < 0 else j + 2 + int(n) + 2
        if end > len(b):
            raise IndexError
        return (b[i:end], None), end
    if t == b"*":
        kids, k = [], j + 2
        for _ in range(max(int(n), 0)):
            kid, k = parse(b, k)
            kids.append(kid)
        return (b[i:k], kids), k
    raise ValueError("bad reply %r" % b[i:j])


def array(kids):
    return b"*%d\r\n" % len(kids) + b"".join(k[0] for k in kids)


def text(node):
    return node[0].split(b"\r\n", 1)[1][:-2].decode()


def info_of(conn, name):
    reply = conn.ask(b"COMMAND", b"INFO", name.encode())
    return reply[1][0]


def docs_of(conn, name):
    reply = conn.ask(b"COMMAND", b"DOCS", name.encode())
    return reply[1][1]


def only(subs, keep):
    """An INFO subcommand list filtered to keep, in keep's order."""
    by = {text(s[1][0]): s for s in subs}
    return [by[k] for k in keep]


def only_docs(mapping, keep):
    by = {text(mapping[1][i]): mapping[1][i + 1]
          for i in range(0, len(mapping[1]), 2)}
    kids = []
    for k in keep:
        kids += [(b"$%d\r\n%s\r\n" % (len(k), k.encode()), None), by[k]]
    return kids


def container(info, docs, subs):
    """info's and docs' subcommands cut down to subs."""
    kids = info[1]
    info = (array(kids[:9] + [(array(only(kids[9][1], subs)), None)]), None)
    d = docs[1]
    out = []
    for i in range(0, len(d), 2):
        out.append(d[i])
        if text(d[i]) == "subcommands":
            out.append((array(only_docs(d[i + 1], subs)), None))
        else:
            out.append(d[i + 1])
    return info, (array(out), None)


def c_string(raw):
    """raw as C string literals of whole RESP lines, up to 72 columns."""
    parts, cur = [], ""
    for ln in raw.split(b"\r\n")[:-1]:
        seg = ln.decode().replace("\\", "\\\\").replace('"', '\\"')
        seg += "\\r\\n"
        if cur and len(cur) + len(seg) > 62:
            parts.append('"%s"' % cur)
            cur = ""
        cur += seg
    parts.append('"%s"' % cur)
    return "\n     ".join(parts)


def same_bytes(a, b):
    """Whether two versions of command_docs.c say the same: adjacent
    literals joined and blanks squeezed (as clang-format may split a long
    literal)."""
    def norm(t):
        return re.sub(r"\s+", " ", re.sub(r'"\s+"', "", t)).strip()
    return norm(a) == norm(b)


def generate(port):
    out = []
    print_ = out.append
    conn = Conn(port)
    all_names = names()
    rows = []
    for name in all_names:
        if "|" in name:
            continue
        info, docs = info_of(conn, name), docs_of(conn, name)
        subs = [n for n in all_names if n.startswith(name + "|")]
        if subs:
            info, docs = container(info, docs, subs)
        rows.append((name, info, docs))
        for sub in subs:
            rows.append((sub, info_of(conn, sub), docs_of(conn, sub)))
    version = text(conn.ask(b"INFO", b"server")).split("redis_version:")[1]
    version = version.split("\r\n")[0]
    print_("/* SPDX-License-Identifier: MIT */")
    print_("/*")
    print_(" * command_docs.c - what COMMAND INFO and COMMAND DOCS say of each")
    print_(" * command, as redis-server %s says it (RESP2), containers cut" %
           version)
    print_(" * down to weft-kv's subcommands. Generated by")
    print_(" * tests/kv/command_docs.py from commands.c's tables: do not edit.")
    print_(" */")
    print_('#include "kv.h"')
    print_("")
    print_("const struct kv_command_doc kv_command_docs[] = {")
    for name, info, docs in rows:
        print_('    {"%s",' % name)
        print_("     %s," % c_string(info[0]))
        print_("     %s}," % c_string(docs[0]))
    print_("};")
    print_("")
    print_("const int kv_command_ndocs = %d;" % len(rows))
    return "\n".join(out) + "\n"


def main():
    sys.stdout.write(generate(int(sys.argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
