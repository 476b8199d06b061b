#!/usr/bin/env bash
# The write-path figures `lakelet bench` does not take (docs/BENCHMARKS.md "Write path"), side
# by side with native Postgres on local disk with lakelet's postgresql.conf additions:
#   1. `pgbench -i -s SCALE`: native, then the branch's own socket, ROUNDS times, with
#      pgbench's phase times;
#   2. TPC-B (-c 4 -j 2 -T 20), ROUNDS times each side after a CHECKPOINT: WAL bytes per
#      transaction (pg_current_wal_lsn) and bytes the disk took per transaction, the run's
#      closing CHECKPOINT and `sync` included (/sys/block/DEV/stat, so keep the machine quiet);
#   3. `lakelet branch create` on a quiet running parent, then right after it inserted 400 MB,
#      and the child's first answer (`select 1`), ROUNDS times.
# Usage: scripts/bench-write-path.sh [SCALE] [ROUNDS]   (default 10 3; run as root;
#        UPARGS="--no-checkpoint-before-branch" measures part 3 without the parent's CHECKPOINT)
set -euo pipefail
S=${1:-10}
R=${2:-3}
cd "$(dirname "$0")/.."
. scripts/bench-common.sh
# The same settings the daemon gives a compute, as -c options.
conf=$(sed -n '/^pub const TUNED_CONF/,/";$/p' src/compute/postgres.rs |
  grep -oE '^[a-z_]+ = [^\\#]+' | sed -E 's/ = /=/; s/ *$//; s/^/-c /' | tr '\n' ' ')
native_start $conf
"$L" "${D[@]}" up --api-port 0 --proxy-port 0 --idle-stop 0s ${UPARGS:-} >/dev/null
sock=$("$L" "${D[@]}" --json branch start main |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["socket_dir"])')
export PGDATABASE=postgres
# native_start's superuser is the compute user; a branch's is postgres.
host() { if [ "$1" = native ]; then echo "$work/sock"; else echo "$sock"; fi; }
user() { if [ "$1" = native ]; then echo lakelet; else echo postgres; fi; }
dev=$(lsblk -no PKNAME "$(df --output=source "$work" | tail -1)" 2>/dev/null || true)
dev=${dev:-$(basename "$(df --output=source "$work" | tail -1)")}
sectors() { awk '{print $7}' "/sys/block/$dev/stat"; }
q() { "$bindir/psql" -h "$(host "$1")" -U "$(user "$1")" -XAtq -c "$2"; }
pgbench() { local s=$1; shift; "$bindir/pgbench" -h "$(host "$s")" -U "$(user "$s")" "$@"; }

echo "# 1. pgbench -i -s $S"
for r in $(seq "$R"); do
  for side in native branch; do
    echo "round $r $side: $(pgbench $side -i -s "$S" -q 2>&1 | grep 'done in')"
  done
done

echo "# 2. TPC-B bytes per transaction (device $dev)"
for r in $(seq "$R"); do
  for side in native branch; do
    q $side checkpoint; sync; s0=$(sectors); a=$(q $side "select pg_current_wal_lsn()")
    tx=$(pgbench $side -c 4 -j 2 -T 20 2>&1 | awk '/actually processed/ {print $NF}' | cut -d/ -f1)
    b=$(q $side "select pg_current_wal_lsn()")
    q $side checkpoint; sync; s1=$(sectors)
    wal=$(q $side "select pg_wal_lsn_diff('$b', '$a')")
    echo "round $r $side: tps=$((tx / 20)) wal_B_per_tx=$(( ${wal%.*} / tx )) disk_B_per_tx=$(( (s1 - s0) * 512 / tx ))"
  done
done

echo "# 3. branch create: quiet parent vs right after it inserted 400 MB"
"$L" "${D[@]}" psql main -- -XAtq -c "create table big (id bigint, pad text)"
for r in $(seq "$R"); do
  sleep 2
  t0=$(ms); "$L" "${D[@]}" branch create "q$r" >/dev/null; t1=$(ms)
  "$L" "${D[@]}" psql main -- -XAtq -c "insert into big select g, repeat('x', 1000) from generate_series(1, 400000) g"
  t2=$(ms); "$L" "${D[@]}" branch create "w$r" >/dev/null; t3=$(ms)
  "$L" "${D[@]}" psql "w$r" -- -XAtq -c "select 1" >/dev/null; t4=$(ms)
  echo "round $r: quiet_ms=$(elapsed "$t0" "$t1") after_400MB_ms=$(elapsed "$t2" "$t3") child_ready_ms=$(elapsed "$t2" "$t4")"
  "$L" "${D[@]}" psql main -- -XAtq -c "truncate big"
  "$L" "${D[@]}" branch delete "q$r" --purge >/dev/null
  "$L" "${D[@]}" branch delete "w$r" --purge >/dev/null
done

# 4. (SOAK=seconds) The store's size after a long TPC-B run on the branch, before and after a
#    GC pass, against what native Postgres would keep for the same point-in-time reach: ratio =
#    (page store + the WAL beside it) / (the live databases + that same WAL).
if [ -n "${SOAK:-}" ]; then
  echo "# 4. store size after ${SOAK}s of TPC-B on the branch"
  pgbench branch -c 4 -j 2 -T "$SOAK" 2>&1 | grep -E '^tps'
  size() { du -sb "$1" | cut -f1; }
  live=$(q branch "select sum(pg_database_size(oid)) from pg_database")
  for when in before_gc after_gc; do
    [ $when = after_gc ] && "$L" "${D[@]}" gc >/dev/null
    store=$(size "$work/data/store"); wal=$(size "$work/data/wal")
    echo "$when: store_B=$store wal_kept_B=$wal live_db_B=$live ratio=$(python3 -c "print(round(($store + $wal) / ($live + $wal), 2))")"
  done
fi
