"""psycopg2 (on libpq) through the lakelet proxy: the COPY-after-SELECT loop of issue 22.

Usage: psycopg2_loop.py URL SSLMODE LOOPS

Each round runs a SELECT and then COPY ... TO STDOUT (FORMAT binary) in one transaction, under
a watchdog: a round that takes over 20 s is a stall, and the script exits 3 naming the round.
Also checks that the pid libpq reports (conn.info.backend_pid) is the server's.
"""

import io
import sys

import psycopg2

from stall_watch import Watchdog

url, sslmode, loops = sys.argv[1], sys.argv[2], int(sys.argv[3])
conn = psycopg2.connect(f"{url}&sslmode={sslmode}&gssencmode=disable")
cur = conn.cursor()
cur.execute("select pg_backend_pid()")
assert cur.fetchone()[0] == conn.info.backend_pid, "libpq's backend pid is not the server's"
cur.execute("create temp table t as select g as id, md5(g::text) as v from generate_series(1, 20000) g")
conn.commit()

dog = Watchdog(f"{loops} rounds, sslmode={sslmode}")
for i in range(loops):
    dog.start(i)
    cur.execute("select count(*) from t where id %% 7 = %s", [i % 7])
    assert cur.fetchone()[0] > 0
    out = io.BytesIO()
    cur.copy_expert("copy (select * from t where id < %d) to stdout (format binary)" % (500 + i * 37 % 4000), out)
    assert len(out.getvalue()) > 0
    conn.commit()
dog.stop()
print(f"ok loop {loops} rounds ssl={str(bool(conn.info.ssl_in_use)).lower()}")
