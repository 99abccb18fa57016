# SPDX-License-Identifier: MIT
"""kv_test.py TEST WEFT_KV - weft-kv against clients nobody here wrote.

  compare  tests/kv/commands.txt through redis-cli against weft-kv (one
           core and two) and against redis-server: the same output; then
           compare.py's byte-for-byte check of every reply (inline, RESP,
           pipelined)
  client   redis-py (python3-redis): pipelines of 10,000 commands, MSET and
           MGET across shards on two cores, expiry (lazy and active),
           INFO memory's growth with keys on both cores
  garbage  a bad command keeps the connection, a malformed frame closes
           it, the server goes on; --maxclients's error; the idle timeout;
           --max-query: a bigger request closes the connection, no reply
           (as redis-server's client-query-buffer-limit)
  drain    SIGTERM, then again SIGINT, while two clients write keys of
           both shards and one waits idle: the idle one is closed within
           the grace, a new connection is refused, exit 0, and every
           acknowledged SET is in the keys weft-kv writes at exit (--dump)
  cancel   clients that vanish in the middle of MGETs across cores, then
           a drain with no grace while MGETs are in flight: exit 0 (under
           ASan: nothing leaked), and some gathers were cancelled while
           they waited for the other core (weft-kv's count at exit)
  tls      --tls: redis-cli --tls and redis-py over TLS
  benchmark  redis-benchmark -n 200 -c 2 -t set,get,ping,incr,mset -q
           against weft-kv on two cores: exit 0, and not a line of its
           output or errors says WARN, ERR or error

Exit 0: passed; 77: skipped (a client or redis-server is not installed);
else failed. Every wait has a generous guard; nothing measures time.
"""
import os
import pty
import random
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import atexit

HERE = os.path.dirname(os.path.abspath(__file__))
GUARD = 30  # seconds: a hang guard, never a measurement
SKIP = 77


def fail(msg):
    print("kv_test: FAIL: " + msg)
    sys.exit(1)


def skip(msg):
    print("kv_test: SKIP: " + msg)
    sys.exit(SKIP)


def wait_until(cond, what):
    end = time.monotonic() + GUARD
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.01)
    fail("waited %d s for %s" % (GUARD, what))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


STARTED = []


@atexit.register
def kill_leftovers():
    """A failed check exits at once: kill what it left running."""
    for p in STARTED:
        if p.poll() is None:
            p.kill()
            p.wait()


class Server:
    """weft-kv (or redis-server), started on a free port, stopped by pid."""

    def __init__(self, argv, port=None):
        self.argv = argv
        self.p = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        STARTED.append(self.p)
        if port is None:  # weft-kv --port 0 says which port it got
            line = self.p.stdout.readline().decode()
            if "ready on port" not in line:
                self.p.kill()
                fail("%s did not start: %r %r" % (argv[0], line,
                                                  self.p.stderr.read()))
            port = int(line.split("ready on port ")[1].split(",")[0])
        self.port = port
        wait_until(self.answers, "%s to answer PING" % argv[0])

    def answers(self):
        try:
            with socket.create_connection(("127.0.0.1", self.port), 1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16) == b"+PONG\r\n"
        except OSError:
            return False

    def stop(self, sig=signal.SIGTERM):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        try:
            out, err = self.p.communicate(timeout=GUARD)
        except subprocess.TimeoutExpired:
            self.p.kill()
            fail("%s did not exit within %d s of signal %d"
                 % (self.argv[0], GUARD, sig))
        return self.p.returncode, err.decode(errors="replace")


def kv(binary, *args):
    return Server([binary, "--port", "0"] + list(args))


def redis_server(*args):
    if not shutil.which("redis-server"):
        skip("redis-server is not installed (scripts/setup redis-server)")
    port = free_port()
    return Server(["redis-server", "--port", str(port), "--save", "",
                   "--appendonly", "no", "--bind", "127.0.0.1"] + list(args),
                  port)


def stop_ok(server):
    rc, err = server.stop()
    if rc != 0:
        fail("weft-kv exited with %d:\n%s" % (rc, err))
    return err


# ---- compare ----

def redis_cli(port, script):
    with open(script, "rb") as f:
        r = subprocess.run(["redis-cli", "-p", str(port)], stdin=f,
                           capture_output=True, timeout=GUARD)
    return r.stdout


def test_compare(binary):
    if not shutil.which("redis-cli"):
        skip("redis-cli is not installed (scripts/setup redis-tools)")
    script = os.path.join(HERE, "commands.txt")
    ref = redis_server()
    try:
        check_command_docs(ref)
        want = redis_cli(ref.port, script)
        for cores in ("1", "2"):
            s = kv(binary, "-t", cores)
            try:
                compare_one(s, ref, cores, script, want)
                if cores == "2":
                    compare_tty(s, ref)
            finally:
                stop_ok(s)
    finally:
        ref.stop()


def check_command_docs(ref):
    """command_docs.c says what this redis-server says of the commands
    in commands.c's tables."""
    sys.path.insert(0, HERE)
    import command_docs
    path = os.path.join(HERE, "..", "..", "docs", "examples", "weft-kv",
                        "command_docs.c")
    if not command_docs.same_bytes(command_docs.generate(ref.port),
                                   open(path).read()):
        fail("docs/examples/weft-kv/command_docs.c is not what "
             "tests/kv/command_docs.py makes from this redis-server: "
             "regenerate it")
    print("kv_test: command_docs.c is redis-server's COMMAND INFO and DOCS")


def cli_tty(port, lines):
    """redis-cli in a terminal, as a person starts it: it asks COMMAND DOCS
    first, then each line is typed; everything it printed, the port made
    PORT."""
    pid, fd = pty.fork()
    if pid == 0:  # a plain terminal: no cursor moves to compare
        os.execvpe("redis-cli", ["redis-cli", "-p", str(port)],
                   dict(os.environ, TERM="dumb"))
    out = b""
    end = time.monotonic() + GUARD
    for want in range(1, len(lines) + 2):  # a prompt before each line
        while out.count(b"> ") < want and time.monotonic() < end:
            if not select.select([fd], [], [], 0.1)[0]:
                continue
            try:
                d = os.read(fd, 65536)
            except OSError:
                break
            out += d
        if want <= len(lines):
            os.write(fd, lines[want - 1] + b"\r")
    os.kill(pid, signal.SIGTERM)
    os.waitpid(pid, 0)
    os.close(fd)
    return out.replace(b"%d" % port, b"PORT")


def compare_tty(s, ref):
    """redis-cli starts on weft-kv without a word of its own, and its HELP
    (made from COMMAND DOCS) is the same as on redis-server."""
    lines = [b"HELP GET", b"HELP SET", b"HELP CONFIG GET", b"SET a b",
             b"GET a", b"SELECT 2", b"GET a"]
    got, want = cli_tty(s.port, lines), cli_tty(ref.port, lines)
    if got != want or b"summary:" not in got:
        fail("redis-cli in a terminal:\n  weft-kv %r\n  redis   %r"
             % (got, want))
    print("kv_test: redis-cli in a terminal: HELP and prompts identical")


def compare_one(s, ref, cores, script, want):
    got = redis_cli(s.port, script)
    if got != want:
        a, b = got.splitlines(), want.splitlines()
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                fail("-t %s: redis-cli line %d: weft-kv %r, "
                     "redis-server %r" % (cores, i + 1, x, y))
        fail("-t %s: %d lines against %d" % (cores, len(a), len(b)))
    r = subprocess.run([sys.executable,
                        os.path.join(HERE, "compare.py"),
                        str(s.port), str(ref.port), script],
                       capture_output=True, timeout=GUARD * 2)
    print(r.stdout.decode(), end="")
    if r.returncode != 0:
        fail("-t %s: compare.py: %s" % (cores, r.stdout.decode()))
    print("kv_test: -t %s: %d lines of redis-cli output identical"
          % (cores, len(want.splitlines())))


# ---- client ----

def test_client(binary):
    try:
        import redis
    except ImportError:
        skip("python3-redis is not installed (scripts/setup python3-redis)")
    s = kv(binary, "-t", "2")
    try:
        r = redis.Redis(port=s.port, socket_timeout=GUARD)
        assert r.ping()
        r.client_setname("kv-test")
        assert r.client_getname() in ("kv-test", b"kv-test")
        # a pipeline of 10,000 commands, then another of 10,000 reads
        p = r.pipeline(transaction=False)
        for i in range(10000):
            p.set("key:%d" % i, "value:%d" % i)
        res = p.execute()
        if res != [True] * 10000:
            fail("pipelined SETs: %r" % res[:5])
        p = r.pipeline(transaction=False)
        for i in range(10000):
            p.get("key:%d" % i)
        res = p.execute()
        if res != [b"value:%d" % i for i in range(10000)]:
            fail("pipelined GETs differ")
        if r.dbsize() != 10000:
            fail("DBSIZE %d" % r.dbsize())
        # across shards: two cores, keys on both
        keys = ["m:%d" % i for i in range(500)]
        r.mset({k: k.upper() for k in keys})
        got = r.mget(keys + ["nosuch"])
        if got != [k.upper().encode() for k in keys] + [None]:
            fail("MGET across shards")
        if r.exists(*keys, "nosuch", keys[0]) != 501:
            fail("EXISTS across shards")
        if r.delete(*keys[:250], "nosuch") != 250:
            fail("DEL across shards")
        if r.exists(*keys) != 250:
            fail("EXISTS after DEL")
        # integers
        assert r.incr("n") == 1 and r.incrby("n", 41) == 42
        assert r.decr("n") == 41 and r.decrby("n", 40) == 1
        try:
            r.incr("key:1")
            fail("INCR of a string did not fail")
        except redis.ResponseError as e:
            assert str(e) == "value is not an integer or out of range", e
        # expiry, lazy: a key read after its time is gone
        r.set("short", "x", px=50)
        assert r.pttl("short") <= 50
        wait_until(lambda: r.get("short") is None, "a key with PX 50 to go")
        # expiry, active: keys nobody reads are swept (DBSIZE counts them
        # until then)
        before = r.dbsize()
        p = r.pipeline(transaction=False)
        for i in range(2000):
            p.set("gone:%d" % i, "x", px=20)
        p.execute()
        wait_until(lambda: r.dbsize() <= before,
                   "the active sweep to remove 2,000 expired keys")
        info = r.info("memory")
        if info.get("used_memory", 0) <= 0:
            fail("INFO memory: %r" % info)
        client_databases(redis, s, r, keys)
        client_command_config(r)
        client_memory(r)
        r.flushall()
        assert r.dbsize() == 0
        r.close()
    finally:
        stop_ok(s)
    print("kv_test: redis-py: pipelines, shards, expiry: ok")


def client_databases(redis, s, r, keys):
    """redis-py's db=3 (SELECT 3 on connecting): the same keys, across
    both shards, apart from database 0's; FLUSHDB and FLUSHALL."""
    r3 = redis.Redis(port=s.port, db=3, socket_timeout=GUARD)
    r3.mset({k: "db3" for k in keys})
    if r3.mget(keys) != [b"db3"] * len(keys) or r3.dbsize() != len(keys):
        fail("MSET/MGET across shards in database 3")
    if r.exists(*keys) != 250 or r.get(keys[300]) != keys[300].upper().encode():
        fail("database 3's keys are seen in database 0")
    if r.info("keyspace").get("db3", {}).get("keys") != len(keys):
        fail("INFO keyspace: %r" % r.info("keyspace"))
    if r3.delete(*keys[:100]) != 100 or r.exists(*keys[:100]) != 0:
        fail("DEL in database 3")
    r3.flushdb()
    if r3.dbsize() != 0 or r.exists(*keys) != 250:
        fail("FLUSHDB in database 3 reached database 0")
    r3.set("x", "1")
    r.flushall()
    if r3.dbsize() != 0:
        fail("FLUSHALL left database 3's keys")
    r3.close()


def client_memory(r):
    """INFO memory on two cores: used_memory grows by at least the bytes
    of the keys and values written, which both cores allocated (each
    from its own malloc arena); so does glibc's own count
    (used_memory_malloc, mallinfo2 over every arena), unless the malloc
    is not glibc's (a sanitizer's: then it stays below the dataset)."""
    keys = [b"mem:%d" % i for i in range(2000)]
    if {shard_of(k, 2) for k in keys} != {0, 1}:
        fail("the memory test's keys are not on both shards")
    before = r.info("memory")
    p = r.pipeline(transaction=False)
    for k in keys:
        p.set(k, b"v" * 2000)
    p.execute()
    after = r.info("memory")
    loaded = sum(len(k) + 2000 for k in keys)
    grew = after["used_memory"] - before["used_memory"]
    if grew < loaded:
        fail("used_memory grew %d bytes for %d bytes of keys and values "
             "on two cores: %r" % (grew, loaded, after))
    glibc = after["used_memory_malloc"] >= after["used_memory_dataset"]
    if glibc and after["used_memory_malloc"] - \
            before["used_memory_malloc"] < loaded:
        fail("mallinfo2 grew %d bytes for %d on two cores: %r"
             % (after["used_memory_malloc"] - before["used_memory_malloc"],
                loaded, after))
    r.delete(*keys)
    print("kv_test: INFO memory on two cores: used_memory +%d for %d bytes "
          "loaded%s" % (grew, loaded, "" if glibc else
                        " (not glibc's malloc: the keyspaces' count)"))


def client_command_config(r):
    """COMMAND's entries, COMMAND COUNT and CONFIG GET's patterns, as
    redis-py reads them."""
    table = r.command()
    count = r.command_count()
    if len(table) != count or "get" not in table or "config" not in table:
        fail("COMMAND %d entries, COMMAND COUNT %d" % (len(table), count))
    cfg = r.config_get("*")
    if cfg.get("databases") != "16" or cfg.get("appendonly") != "no" or \
            cfg.get("save") != "":
        fail("CONFIG GET *: %r" % cfg)
    if r.config_get("max*") != {k: v for k, v in cfg.items()
                                if k.startswith("max")}:
        fail("CONFIG GET max*: %r" % r.config_get("max*"))


# ---- garbage ----

def recv_all(sock):
    out = b""
    while True:
        try:
            d = sock.recv(65536)
        except ConnectionResetError:
            return out
        if not d:
            return out
        out += d


def exchange(port, data):
    """Send data, then read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), GUARD) as c:
        c.sendall(data)
        return recv_all(c)


def test_garbage(binary):
    s = kv(binary, "-t", "2", "--proto-max-bulk-len", "1000",
           "--maxclients", "20", "--timeout", "1")
    try:
        with socket.create_connection(("127.0.0.1", s.port), GUARD) as c:
            c.sendall(b"NOSUCH a\r\nGET\r\nPING\r\n")
            want = (b"-ERR unknown command 'NOSUCH', with args beginning "
                    b"with: 'a' \r\n-ERR wrong number of arguments for "
                    b"'get' command\r\n+PONG\r\n")
            got = b""
            while len(got) < len(want):
                got += c.recv(4096)
            if got != want:
                fail("bad commands: %r" % got)
        cases = [
            (b"*abc\r\n", b"-ERR Protocol error: invalid multibulk length"),
            (b"*1\r\nx3\r\nfoo\r\n",
             b"-ERR Protocol error: expected '$', got 'x'"),
            (b"*1\r\n$-5\r\n", b"-ERR Protocol error: invalid bulk length"),
            (b"*2\r\n$3\r\nset\r\n$1001\r\n",
             b"-ERR Protocol error: invalid bulk length"),
            (b'SET a "unbalanced\r\n',
             b"-ERR Protocol error: unbalanced quotes in request"),
            (b"x" * 70000, b"-ERR Protocol error: too big inline request"),
            (b"PING\r\n*1\r\n$4\r\nPING\r\n*z\r\n",
             b"+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk"),
        ]
        for data, want in cases:
            got = exchange(s.port, data)
            if not got.startswith(want):
                fail("malformed %r: got %r" % (data[:30], got[:100]))
        # random bytes from many clients at once; the server lives on
        rnd = random.Random(18)

        def noise(seed):
            rr = random.Random(seed)
            for _ in range(20):
                blob = bytes(rr.randrange(256) for _ in range(rr.randrange(
                    1, 3000)))
                if rr.random() < 0.5:
                    blob = b"*3\r\n$3\r\nSET\r\n" + blob
                try:
                    with socket.create_connection(("127.0.0.1", s.port),
                                                  GUARD) as c:
                        c.sendall(blob)
                        c.settimeout(0.2)
                        try:
                            c.recv(65536)
                        except (socket.timeout, ConnectionResetError):
                            pass
                except OSError:
                    pass

        ts = [threading.Thread(target=noise, args=(rnd.random(),))
              for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        if not s.answers():
            fail("the server stopped answering after garbage")
        # --maxclients 20: the 21st connection gets Redis's error
        held = [socket.create_connection(("127.0.0.1", s.port), GUARD)
                for _ in range(20)]
        for c in held:  # each is served (counted) before the next
            c.sendall(b"PING\r\n")
            if c.recv(16) != b"+PONG\r\n":
                fail("a client under maxclients was not served")
        got = exchange(s.port, b"PING\r\n")
        if got != b"-ERR max number of clients reached\r\n":
            fail("maxclients: %r" % got)
        # --timeout 1: idle clients are closed by the server
        for c in held:
            c.settimeout(GUARD)
            if recv_all(c) != b"":
                fail("an idle client got bytes")
            c.close()
        if not s.answers():
            fail("no answer after the idle clients were closed")
    finally:
        stop_ok(s)
    garbage_query_limit(binary)
    print("kv_test: garbage, maxclients, idle timeout, query buffer limit: "
          "ok")


def send_all_quietly(c, data):
    """Send data; the server may close (and reset) before it is all sent."""
    try:
        c.sendall(data)
    except OSError:
        pass


def over_query_limit(port):
    """A SET of a 2 MB value against a 1 MB query buffer limit, then a SET
    of 900 KB on a new connection: the first's bytes until the server
    closes, and the second's reply."""
    with socket.create_connection(("127.0.0.1", port), GUARD) as c:
        c.settimeout(GUARD)
        send_all_quietly(c, b"*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$%d\r\n%s\r\n"
                         % (2 << 20, b"x" * (2 << 20)))
        big = recv_all(c)  # a timeout raises: the hang guard
    with socket.create_connection(("127.0.0.1", port), GUARD) as c:
        c.settimeout(GUARD)
        c.sendall(b"*3\r\n$3\r\nSET\r\n$5\r\nsmall\r\n$900000\r\n%s\r\n"
                  % (b"y" * 900000))
        small = c.recv(64)
    return big, small


def garbage_query_limit(binary):
    """--max-query 1048576: a request that outgrows it closes the
    connection with no reply, as redis-server 7.0's
    client-query-buffer-limit 1mb does (it replies nothing: it logs
    "Closing client that reached max query buffer length"); a request
    under it is served; the server goes on."""
    s = kv(binary, "-t", "2", "--max-query", "1048576")
    try:
        big, small = over_query_limit(s.port)
        if big != b"" or small != b"+OK\r\n":
            fail("--max-query 1048576: a 2 MB request got %r, a 900 KB one "
                 "%r" % (big[:80], small))
        if not s.answers():
            fail("no answer after a client passed the query buffer limit")
    finally:
        err = stop_ok(s)
    if "reached max query buffer length" not in err:
        fail("--max-query: no line in the log:\n%s" % err)
    if shutil.which("redis-server"):
        ref = redis_server("--client-query-buffer-limit", "1mb")
        try:
            want = over_query_limit(ref.port)
        finally:
            ref.stop()
        if want != (big, small):
            fail("query buffer limit: weft-kv %r, redis-server %r"
                 % ((big[:80], small), (want[0][:80], want[1])))
        print("kv_test: query buffer limit: closed without a reply, as "
              "redis-server")
    else:
        print("kv_test: query buffer limit: closed without a reply "
              "(redis-server not installed: not compared)")


# ---- drain ----

def shard_of(key, shards):
    """kv.h's kv_shard_of: FNV-1a, the halves folded and mixed, Lemire's
    range reduction."""
    h = 1469598103934665603
    for b in key:
        h = ((h ^ b) * 1099511628211) & 0xFFFFFFFFFFFFFFFF
    x = (((h ^ (h >> 32)) & 0xFFFFFFFF) * 0x9E3779B1) & 0xFFFFFFFF
    return (x * shards) >> 32


def drain_writer(port, prefix, acked, state):
    """Pipelined SETs of PREFIX:N, 50 at a time, each acknowledged +OK
    appended to acked, until the server closes the connection."""
    c = socket.create_connection(("127.0.0.1", port), GUARD)
    buf = b""
    i = 0
    try:
        while True:
            batch = [b"%s:%d" % (prefix, k) for k in range(i, i + 50)]
            i += 50
            c.sendall(b"".join(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nv"
                               b"\r\n" % (len(k), k) for k in batch))
            for k in batch:
                while b"\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                line, buf = buf.split(b"\r\n", 1)
                if line != b"+OK":
                    state["err"] = line
                    return
                acked.append(k)
    except (ConnectionResetError, BrokenPipeError):
        return
    finally:
        c.close()


def refused(port):
    """A connection made now is refused, or closed without a reply."""
    try:
        c = socket.create_connection(("127.0.0.1", port), GUARD)
    except OSError:
        return True
    with c:
        try:
            c.sendall(b"PING\r\n")
        except OSError:
            return True
        return recv_all(c) == b""


def drain_once(binary, sig):
    """SIGTERM (or SIGINT) while two clients write keys of both shards and
    one waits idle: the idle one is closed at once (well before the grace
    of 60 s: the hang guard is 30), a new connection is refused, the
    server exits 0, and every acknowledged SET is in the --dump."""
    tmp = tempfile.mkdtemp(prefix="kv-drain.")
    dump = os.path.join(tmp, "dump")
    s = kv(binary, "-t", "2", "--drain-grace", "60", "--dump", dump)
    state = {"err": None}
    idle = socket.create_connection(("127.0.0.1", s.port), GUARD)
    idle.sendall(b"PING\r\n")  # served once: a client the server knows
    if idle.recv(16) != b"+PONG\r\n":
        fail("the idle client's PING")
    acked = [[], []]
    ws = [threading.Thread(target=drain_writer,
                           args=(s.port, b"w%d" % n, acked[n], state))
          for n in range(2)]
    for t in ws:
        t.start()
    wait_until(lambda: all(len(a) >= 5000 for a in acked) or
               not all(t.is_alive() for t in ws),
               "5,000 acknowledged SETs from each writer")
    s.p.send_signal(sig)
    idle.settimeout(GUARD)
    if recv_all(idle) != b"":  # a timeout raises: the hang guard
        fail("the idle client got bytes in the drain")
    idle.close()
    for t in ws:
        t.join(GUARD)
    if not refused(s.port):
        fail("a connection made in the drain (signal %d) was served" % sig)
    try:
        _, err = s.p.communicate(timeout=GUARD)
    except subprocess.TimeoutExpired:
        fail("weft-kv did not exit within %d s of signal %d" % (GUARD, sig))
    err = err.decode(errors="replace")
    if s.p.returncode != 0:
        fail("weft-kv exited with %d after signal %d:\n%s"
             % (s.p.returncode, sig, err))
    if "signal %d, draining" % sig not in err:
        fail("no drain for signal %d:\n%s" % (sig, err))
    if state["err"]:
        fail("a SET answered %r" % state["err"])
    keys = set(ln.split(b" ")[0] for ln in open(dump, "rb").read().split(
        b"\n") if ln)
    for n, a in enumerate(acked):
        if {shard_of(k, 2) for k in a} != {0, 1}:
            fail("writer %d's acknowledged keys are not on both shards" % n)
        lost = [k for k in a if k not in keys]
        if lost:
            fail("%d acknowledged SETs of writer %d lost, e.g. %r"
                 % (len(lost), n, lost[:3]))
    shutil.rmtree(tmp)
    print("kv_test: drain on signal %d: idle client closed, new connection "
          "refused, %d + %d acknowledged SETs all kept (%d keys at exit); %s"
          % (sig, len(acked[0]), len(acked[1]), len(keys),
             err.strip().splitlines()[-1]))


def test_drain(binary):
    drain_once(binary, signal.SIGTERM)
    drain_once(binary, signal.SIGINT)


# ---- cancel ----

def mset_writer(port, n, stop):
    """Pipelined MSETs of pairs (pa:N:i, pb:N:i), most of them over both
    shards, until the server goes."""
    try:
        c = socket.create_connection(("127.0.0.1", port), GUARD)
    except OSError:
        return
    i = 0
    try:
        while not stop.is_set():
            batch = b""
            for _ in range(100):
                args = [b"MSET", b"pa:%d:%d" % (n, i), b"%d" % i,
                        b"pb:%d:%d" % (n, i), b"%d" % i]
                batch += b"*5\r\n" + b"".join(b"$%d\r\n%s\r\n" % (len(a), a)
                                              for a in args)
                i += 1
            c.sendall(batch)
            got = b""
            while got.count(b"\r\n") < 100:
                d = c.recv(65536)
                if not d:
                    return
                got += d
    except OSError:
        return
    finally:
        c.close()


def dbsize(port):
    with socket.create_connection(("127.0.0.1", port), GUARD) as c:
        c.sendall(b"DBSIZE\r\n")
        got = b""
        while not got.endswith(b"\r\n"):
            got += c.recv(64)
        return int(got[1:-2])


def check_msets_whole(dump):
    """Every MSET of the dump's pairs is there whole or not at all."""
    keys = set(ln.split(b" ")[0] for ln in open(dump, "rb").read().split(
        b"\n") if ln)
    pairs = 0
    for k in keys:
        if k.startswith(b"pa:"):
            pairs += 1
            if b"pb:" + k[3:] not in keys:
                fail("an MSET cut by the drain: %r without its pb" % k)
        elif k.startswith(b"pb:") and b"pa:" + k[3:] not in keys:
            fail("an MSET cut by the drain: %r without its pa" % k)
    return pairs


def mget_gatherer(port, req, reply_len, stop):
    """MGETs across both shards, 4 in flight, each reply read whole, so
    that the server is always gathering for this connection (not held in
    a send), until the server goes."""
    try:
        c = socket.create_connection(("127.0.0.1", port), GUARD)
    except OSError:
        return
    try:
        while not stop.is_set():
            c.sendall(req * 4)
            got = 0
            while got < 4 * reply_len:
                d = c.recv(1 << 20)
                if not d:
                    return
                got += len(d)
    except OSError:
        return
    finally:
        c.close()


def gathers_cancelled(err):
    """weft-kv's line at exit: N cross-shard gathers cancelled mid-hop."""
    for ln in err.splitlines():
        if ln.endswith(" cross-shard gathers cancelled mid-hop"):
            return int(ln.split()[1])
    fail("no count of cancelled gathers at exit:\n" + err)


def test_cancel(binary):
    tmp = tempfile.mkdtemp(prefix="kv-cancel.")
    dump = os.path.join(tmp, "dump")
    s = kv(binary, "-t", "2", "--drain-grace", "0", "--dump", dump)
    keys = [b"c:%d" % i for i in range(2000)]
    with socket.create_connection(("127.0.0.1", s.port), GUARD) as c:
        args = [b"MSET"] + [x for k in keys for x in (k, b"v" * 100)]
        c.sendall(b"*%d\r\n" % len(args) +
                  b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        if c.recv(16) != b"+OK\r\n":
            fail("MSET of 2,000 keys")
    mget = [b"MGET"] + keys
    req = b"*%d\r\n" % len(mget) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a)
                                           for a in mget)

    def vanish(n):
        for _ in range(n):
            c = socket.create_connection(("127.0.0.1", s.port), GUARD)
            c.sendall(req * 20)
            # a reset, not a close: the server's sends fail mid-reply
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                         b"\x01\x00\x00\x00\x00\x00\x00\x00")
            c.close()

    ts = [threading.Thread(target=vanish, args=(25,)) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    if not s.answers():
        fail("no answer after clients vanished mid-MGET")
    # a client's end is seen at its next send, not mid-hop: the count
    # is there (INFO stats), and the drain below is what moves it
    with socket.create_connection(("127.0.0.1", s.port), GUARD) as c:
        c.sendall(b"INFO stats\r\n")
        got = b""
        while not got.endswith(b"\r\n\r\n"):
            d = c.recv(65536)
            if not d:
                break
            got += d
        if b"\r\nweft_gathers_cancelled:" not in got:
            fail("INFO stats has no weft_gathers_cancelled: %r" % got)
    # a drain with no grace while MGETs and MSETs across shards are in
    # flight on both cores: clients that read their MGETs' replies keep
    # the server gathering, so the drain cancels some gathers mid-hop
    # (waiting for the other core's part), which weft-kv counts
    # (MGETs of 4,000 keys not there: small replies, long gathers)
    stop = threading.Event()
    gkeys = [b"g:%d" % i for i in range(4000)]
    greq = b"*%d\r\n$4\r\nMGET\r\n" % (len(gkeys) + 1) + b"".join(
        b"$%d\r\n%s\r\n" % (len(k), k) for k in gkeys)
    reply_len = len(b"*%d\r\n" % len(gkeys)) + len(gkeys) * len(b"$-1\r\n")
    writers = [threading.Thread(target=mset_writer, args=(s.port, n, stop))
               for n in range(4)]
    writers += [threading.Thread(target=mget_gatherer,
                                 args=(s.port, greq, reply_len, stop))
                for n in range(10)]
    for t in writers:
        t.start()
    busy = []
    for _ in range(8):
        c = socket.create_connection(("127.0.0.1", s.port), GUARD)
        c.sendall(req * 50)
        busy.append(c)
    wait_until(lambda: dbsize(s.port) > len(keys) + 4000,
               "the MSET writers to have written")
    rc, err = s.stop()
    stop.set()
    for t in writers:
        t.join(GUARD)
    for c in busy:
        c.close()
    if rc != 0:
        fail("weft-kv exited with %d after a drain mid-MGET:\n%s" % (rc, err))
    if "Sanitizer" in err or "leak" in err.lower():
        fail("sanitizer report:\n" + err)
    pairs = check_msets_whole(dump)
    cancelled = gathers_cancelled(err)
    if cancelled <= 0:
        fail("the drain with no grace cancelled no gather mid-hop:\n" + err)
    shutil.rmtree(tmp)
    print("kv_test: cancel: 100 vanished clients, a drain mid-MGET and "
          "mid-MSET: ok (%d MSETs whole, %d gathers cancelled mid-hop)"
          % (pairs, cancelled))


# ---- benchmark ----

def test_benchmark(binary):
    """redis-benchmark starts on weft-kv as on Redis: the CONFIG GETs it
    asks first are answered (else it warns), and every test's replies are
    what it expects (else it says ERR or error)."""
    if not shutil.which("redis-benchmark"):
        skip("redis-benchmark is not installed (scripts/setup redis-tools)")
    s = kv(binary, "-t", "2")
    try:
        r = subprocess.run(["redis-benchmark", "-p", str(s.port), "-n",
                            "200", "-c", "2", "-t", "set,get,ping,incr,mset",
                            "-q"], capture_output=True, timeout=GUARD * 2)
        out = (r.stdout + r.stderr).decode(errors="replace")
        # -q rewrites its progress with \r: every piece is a line
        lines = [ln for ln in out.replace("\r", "\n").split("\n")
                 if ln.strip()]
        bad = [ln for ln in lines
               if any(w in ln.lower() for w in ("warn", "err", "error"))]
        if r.returncode != 0 or bad:
            fail("redis-benchmark exited %d:\n%s" % (r.returncode, out))
        done = [ln for ln in lines if "requests per second" in ln]
        if len(done) < 5:
            fail("redis-benchmark ran %d tests of 5:\n%s" % (len(done), out))
    finally:
        stop_ok(s)
    print("kv_test: redis-benchmark: %d tests, no warning or error"
          % len(done))


# ---- tls ----

def test_tls(binary):
    if not shutil.which("openssl"):
        skip("openssl is not installed")
    tmp = tempfile.mkdtemp(prefix="kv-tls.")
    cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=localhost", "-addext",
                    "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=GUARD)
    p = subprocess.Popen([binary, "--port", "0", "-t", "2", "--tls",
                          "--tls-cert", cert, "--tls-key", key],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    STARTED.append(p)
    line = p.stdout.readline().decode()
    if "ready on port" not in line:
        p.kill()
        fail("weft-kv --tls did not start: %r" % p.stderr.read())
    port = int(line.split("ready on port ")[1].split(",")[0])
    s = Server.__new__(Server)
    s.argv, s.p, s.port = [binary], p, port
    try:
        ran = False
        if shutil.which("redis-cli"):
            r = subprocess.run(["redis-cli", "--tls", "--cacert", cert,
                                "-h", "127.0.0.1", "-p", str(port)],
                               input=b"SET t hello\nGET t\nMGET t u\n",
                               capture_output=True, timeout=GUARD)
            if r.stdout != b"OK\nhello\nhello\n\n":
                fail("redis-cli --tls: %r %r" % (r.stdout, r.stderr))
            ran = True
        try:
            import redis
            c = redis.Redis(host="127.0.0.1", port=port, ssl=True,
                            ssl_ca_certs=cert, socket_timeout=GUARD)
            p2 = c.pipeline(transaction=False)
            for i in range(1000):
                p2.set("tls:%d" % i, i)
            p2.execute()
            if c.get("tls:999") != b"999":
                fail("redis-py over TLS")
            c.close()
            ran = True
        except ImportError:
            pass
        if not ran:
            skip("neither redis-cli nor python3-redis is installed")
    finally:
        stop_ok(s)
        shutil.rmtree(tmp)
    print("kv_test: tls: redis-cli and redis-py over TLS: ok")


def main():
    test, binary = sys.argv[1], os.path.abspath(sys.argv[2])
    {"compare": test_compare, "client": test_client,
     "garbage": test_garbage, "drain": test_drain, "cancel": test_cancel,
     "tls": test_tls, "benchmark": test_benchmark}[test](binary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
