"""psycopg 3 (on libpq) through the lakelet proxy, as an application would use it.

Usage: psycopg3_client.py URL SSLMODE LOOPS

Checks, each with an assert that names what differs from a Postgres server:
- conn.info.backend_pid is the server's pg_backend_pid();
- LISTEN/NOTIFY: a notification this session sent carries its own pid, another session's
  carries the other's;
- cancel from another thread ends pg_sleep with 57014;
- pg_terminate_backend(conn.info.backend_pid) from another session ends this one (57P01);
- a psycopg_pool pool with check_connection hands out a live connection after its pooled one
  was terminated by pid;
- COPY in both directions (text in, binary out) agrees row for row;
- LOOPS rounds of SELECT then COPY ... TO STDOUT (FORMAT binary), each bounded by a watchdog:
  a round that takes over 20 s is a stall (the TLS-record hang of issue 22), and the script
  exits 3 naming the round;
- 2000 queries in pipeline mode with 20 kB results each, under the same watchdog: both
  directions full at once, which a relay that blocks one way while the other fills would
  deadlock.

Prints one line per check ("ok NAME ...") so the Rust test can see every one ran.
"""

import sys
import threading
import time

import psycopg
from psycopg import errors
from psycopg_pool import ConnectionPool

from stall_watch import Watchdog

url, sslmode, loops = sys.argv[1], sys.argv[2], int(sys.argv[3])
dsn = f"{url}&sslmode={sslmode}&gssencmode=disable"


def connect(**kw):
    return psycopg.connect(dsn, **kw)


def ok(name, detail=""):
    print(f"ok {name} {detail}".rstrip(), flush=True)


main = connect(autocommit=True)
pid = main.info.backend_pid
server_pid = main.execute("select pg_backend_pid()").fetchone()[0]
assert pid == server_pid, f"backend_pid {pid} != pg_backend_pid() {server_pid}"
assert bool(main.pgconn.ssl_in_use) == (sslmode == "require"), main.pgconn.ssl_in_use
ok("pid", f"{pid} ssl={str(bool(main.pgconn.ssl_in_use)).lower()}")

# LISTEN/NOTIFY: self-detection by pid.
other = connect(autocommit=True)
main.execute("listen ch")
main.execute("notify ch, 'self'")
other.execute("notify ch, 'other'")
seen = {}
for n in main.notifies(timeout=10, stop_after=2):
    seen[n.payload] = n.pid
assert seen.get("self") == pid, f"own notification from pid {seen.get('self')}, not {pid}"
assert seen.get("other") == other.info.backend_pid, seen
ok("notify", str(seen))

# Cancel from another thread.
victim = connect(autocommit=True)
timer = threading.Timer(0.5, victim.cancel)
timer.start()
t = time.monotonic()
try:
    victim.execute("select pg_sleep(30)")
    raise AssertionError("pg_sleep(30) was not cancelled")
except errors.QueryCanceled as e:
    assert e.sqlstate == "57014", e.sqlstate
assert time.monotonic() - t < 20
assert victim.execute("select 1").fetchone() == (1,)  # the session survives a cancel
ok("cancel")

# Terminate by the pid the client knows.
vpid = victim.info.backend_pid
assert other.execute("select pg_terminate_backend(%s, 10000)", [vpid]).fetchone()[0] is True
try:
    victim.execute("select 1")
    raise AssertionError("a terminated session still answers")
except psycopg.OperationalError as e:
    assert e.sqlstate in ("57P01", None), e.sqlstate
assert victim.closed or victim.broken
left = other.execute("select count(*) from pg_stat_activity where pid = %s", [vpid]).fetchone()[0]
assert left == 0, f"pid {vpid} still in pg_stat_activity"
ok("terminate", str(vpid))

# A pool that checks its connections finds the terminated one and replaces it.
with ConnectionPool(
    dsn, min_size=1, max_size=1, check=ConnectionPool.check_connection, open=True, timeout=30
) as pool:
    with pool.connection() as c:
        p1 = c.info.backend_pid
        assert c.execute("select pg_backend_pid()").fetchone()[0] == p1
    other.execute("select pg_terminate_backend(%s, 10000)", [p1])
    with pool.connection() as c:
        p2 = c.info.backend_pid
        assert p2 != p1, "the pool handed out the terminated connection"
        assert c.execute("select pg_backend_pid()").fetchone()[0] == p2
ok("pool", f"{p1}->{p2}")

# COPY in (text) and out (binary).
main.execute("drop table if exists copy_t")
main.execute("create table copy_t(id int primary key, v text)")
rows = [(i, f"row {i} " + "z" * (i % 300)) for i in range(20000)]
with main.cursor() as cur:
    with cur.copy("copy copy_t (id, v) from stdin") as cp:
        for r in rows:
            cp.write_row(r)
    assert main.execute("select count(*) from copy_t").fetchone()[0] == len(rows)
    got = []
    with cur.copy("copy (select id, v from copy_t order by id) to stdout (format binary)") as cp:
        cp.set_types(["int4", "text"])
        for r in cp.rows():
            got.append(r)
assert got == rows, "COPY out differs from what went in"
ok("copy", str(len(got)))

# The COPY-after-SELECT loop (and a pipeline), every round under a watchdog.
dog = Watchdog(f"{loops} rounds, sslmode={sslmode}")
loop = connect()  # not autocommit: the reported hang left the server idle in transaction
for i in range(loops):
    dog.start(i)
    with loop.cursor() as cur:
        cur.execute("select count(*) from copy_t where id %% 7 = %s", [i % 7])
        n = cur.fetchone()[0]
        size = 0
        with cur.copy(
            "copy (select id, v from copy_t where id < %s) to stdout (format binary)" % (500 + i * 37 % 4000)
        ) as cp:
            for block in cp:
                size += len(block)
        assert n > 0 and size > 0
    loop.commit()
# Pipeline mode: queries go up while big results come down, both directions full at once; a
# relay that blocks on one direction while the other fills would deadlock here.
dog.start("pipeline")
with connect(autocommit=True) as p:
    with p.pipeline():
        curs = [p.execute("select repeat('p', 20000), %s", [i]) for i in range(2000)]
    got = sum(len(c.fetchone()[0]) for c in curs)
assert got == 2000 * 20000, got
dog.stop()
ok("loop", f"{loops} rounds")
ok("pipeline", "2000 queries, 40 MB down")
main.execute("drop table copy_t")
