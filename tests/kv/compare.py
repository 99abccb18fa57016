# SPDX-License-Identifier: MIT
"""compare.py PORT_A PORT_B SCRIPT - send each line of SCRIPT to two
servers as an inline request (the line as typed, as telnet or nc would)
and check that their replies are the same bytes; then the same requests
as RESP arrays, and all of them again pipelined in one write; each
connection ends with QUIT, whose +OK both servers must follow by closing
it. Prints the first difference; exit 0 when every reply matches."""
import socket
import sys


def split_args(line):
    """sdssplitargs, as Redis and redis-cli split a line."""
    out, i, n = [], 0, len(line)
    while True:
        while i < n and line[i] in b" \t\n\r\v\f":
            i += 1
        if i >= n:
            return out
        cur, inq, insq = bytearray(), False, False
        while True:
            c = line[i:i + 1]
            if inq:
                if c == b"\\" and line[i + 1:i + 2] == b"x" and \
                        all(ch in b"0123456789abcdefABCDEF"
                            for ch in line[i + 2:i + 4]) and \
                        len(line[i + 2:i + 4]) == 2:
                    cur.append(int(line[i + 2:i + 4], 16))
                    i += 3
                elif c == b"\\" and i + 1 < n:
                    i += 1
                    e = line[i:i + 1]
                    cur += {b"n": b"\n", b"r": b"\r", b"t": b"\t",
                            b"b": b"\b", b"a": b"\a"}.get(e, e)
                elif c == b'"':
                    if i + 1 < n and line[i + 1:i + 2] not in b" \t\n\r\v\f":
                        return None
                    i += 1
                    break
                elif c == b"":
                    return None
                else:
                    cur += c
            elif insq:
                if c == b"\\" and line[i + 1:i + 2] == b"'":
                    i += 1
                    cur += b"'"
                elif c == b"'":
                    if i + 1 < n and line[i + 1:i + 2] not in b" \t\n\r\v\f":
                        return None
                    i += 1
                    break
                elif c == b"":
                    return None
                else:
                    cur += c
            else:
                if c in (b" ", b"\n", b"\r", b"\t", b""):
                    break
                if c == b'"':
                    inq = True
                elif c == b"'":
                    insq = True
                else:
                    cur += c
            i += 1
        out.append(bytes(cur))


def resp(args):
    b = b"*%d\r\n" % len(args)
    for a in args:
        b += b"$%d\r\n%s\r\n" % (len(a), a)
    return b


class Conn:
    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.buf = b""

    def line(self):
        while b"\r\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d
        i = self.buf.index(b"\r\n")
        ln, self.buf = self.buf[:i + 2], self.buf[i + 2:]
        return ln

    def exactly(self, n):
        while len(self.buf) < n:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("connection closed")
            self.buf += d
        b, self.buf = self.buf[:n], self.buf[n:]
        return b

    def reply(self):
        ln = self.line()
        t = ln[:1]
        if t in b"+-:":
            return ln
        if t == b"$":
            n = int(ln[1:-2])
            return ln if n < 0 else ln + self.exactly(n + 2)
        if t == b"*":
            n = int(ln[1:-2])
            return ln + b"".join(self.reply() for _ in range(max(n, 0)))
        raise ValueError("bad reply %r" % ln)


def main():
    pa, pb, script = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    lines = [ln for ln in open(script, "rb").read().split(b"\n")
             if ln.strip() and not ln.lower().startswith(b"quit")]
    reqs = []
    for ln in lines:
        args = split_args(ln)
        reqs.append((ln + b"\r\n", resp(args)))
    for mode in ("inline", "resp", "pipelined"):
        ca, cb = Conn(pa), Conn(pb)
        for c in (ca, cb):  # the same empty database on both
            c.s.sendall(b"FLUSHALL\r\n")
            c.reply()
        if mode == "pipelined":
            blob = b"".join(r[1] for r in reqs)
            ca.s.sendall(blob)
            cb.s.sendall(blob)
        for i, (inline, arr) in enumerate(reqs):
            if mode != "pipelined":
                req = inline if mode == "inline" else arr
                ca.s.sendall(req)
                cb.s.sendall(req)
            ra, rb = ca.reply(), cb.reply()
            if ra != rb:
                print("compare.py: %s: line %r:\n  %r\n  %r"
                      % (mode, lines[i], ra, rb))
                return 1
        for c, port in ((ca, pa), (cb, pb)):
            c.s.sendall(b"QUIT\r\n")
            if c.reply() != b"+OK\r\n":
                print("compare.py: QUIT did not answer +OK")
                return 1
            # then the server closes the connection: nothing more, the end
            try:
                rest = c.buf + c.s.recv(65536)
            except ConnectionResetError:
                rest = c.buf
            except socket.timeout:
                print("compare.py: port %d: after QUIT's +OK the connection "
                      "stays open" % port)
                return 1
            if rest != b"":
                print("compare.py: port %d: after QUIT's +OK, %r instead "
                      "of the connection closed" % (port, rest[:60]))
                return 1
            c.s.close()
        print("compare.py: %s: %d replies identical" % (mode, len(reqs)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
