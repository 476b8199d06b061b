#!/usr/bin/env python3
"""The floor under a Postgres per test: CPU of one native start → ready → (first query) →
immediate stop, on local disk, with no lakelet involved (docs/BENCHMARKS.md, "A fresh
database per test"). Run as root: ./scripts/bench-postgres-cycle.py [CYCLES]

It initdb's a throwaway cluster as the `postgres` user in a temporary directory, then times
CYCLES starts of `postgres -D` (through setpriv, as lakelet starts computes), each polled to
`ready` in line 8 of postmaster.pid every 2 ms and stopped with SIGQUIT. CPU is the whole
machine's, from /proc/stat: run it with nothing else busy.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time


def cpu_seconds() -> float:
    f = [int(x) for x in open("/proc/stat").readline().split()[1:]]
    return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    cycles = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    bindir = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
    pw = pwd.getpwnam("postgres")
    tmp = tempfile.mkdtemp(prefix="pg-cycle-")
    try:
        os.chown(tmp, pw.pw_uid, pw.pw_gid)
        data, sock = os.path.join(tmp, "d"), tmp
        as_postgres = ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups", "--"]
        subprocess.run(as_postgres + [f"{bindir}/initdb", "-D", data, "-A", "trust", "--no-sync"],
                       check=True, stdout=subprocess.DEVNULL)

        def cycle(query: bool) -> None:
            p = subprocess.Popen(as_postgres + [f"{bindir}/postgres", "-D", data, "-c", "listen_addresses=",
                                                "-c", f"unix_socket_directories={sock}"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            while True:
                try:
                    lines = open(os.path.join(data, "postmaster.pid")).read().split("\n")
                    if len(lines) > 7 and lines[0].strip() == str(p.pid) and lines[7].strip() == "ready":
                        break
                except FileNotFoundError:
                    pass
                time.sleep(0.002)
            if query:
                subprocess.run([f"{bindir}/psql", "-h", sock, "-U", "postgres", "-d", "postgres",
                                "-XAtqc", "select 1"], check=True, stdout=subprocess.DEVNULL)
            p.send_signal(signal.SIGQUIT)
            p.wait()

        for query in (False, True):
            cycle(query)  # warm the page cache
            c0, t0 = cpu_seconds(), time.time()
            for _ in range(cycles):
                cycle(query)
            what = "start → ready" + (" → first query (psql)" if query else "") + " → immediate stop"
            print(f"{what}: {(cpu_seconds() - c0) / cycles * 1000:.0f} ms CPU, "
                  f"{(time.time() - t0) / cycles * 1000:.0f} ms wall per cycle (n={cycles})")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
