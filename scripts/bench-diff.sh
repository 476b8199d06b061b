#!/usr/bin/env bash
# What `lakelet diff` costs on a large schema, side by side with native Postgres on local disk
# in the same run (docs/BENCHMARKS.md "Schema diff"):
#   TABLES tables (primary key, 4 columns, 2 indexes, a CHECK), one view per table and a view
#   over every 10 of those (a dependency chain), one function per 10 tables; TARGET changes
#   ~10% of them (columns added and retyped, indexes, views redefined, tables dropped/added).
#   Timed: the diff of two native databases (--base-url/--target-url), the diff of two lakelet
#   branches (through the proxy), a self-diff, and `pg_dump --schema-only` of one side as a
#   reference for "reading the whole schema". The SQL is then applied to the native BASE and
#   the diff must come back empty.
# Usage: scripts/bench-diff.sh [TABLES]   (default 1000; run as root; uses target/release)
set -euo pipefail
N=${1:-1000}
cd "$(dirname "$0")/.."
. scripts/bench-common.sh
median3() { printf '%s\n' "$@" | sort -n | sed -n 2p; }

# The schemas.
{
  echo "create schema app;"
  for i in $(seq 1 "$N"); do
    echo "create table app.t$i (id bigint primary key, a int not null default 0, b text, c timestamptz default now(), d numeric(12,2) check (d >= 0));"
    echo "create index t${i}_a on app.t$i (a); create index t${i}_b_c on app.t$i (b, c);"
    echo "create view app.v$i as select id, a, b from app.t$i where a > 0;"
    if (( i % 10 == 0 )); then
      echo "create view app.w$i as select v.id, v.a from app.v$i v join app.v$((i-1)) u using (id);"
      echo "create function app.f$i(x int) returns bigint language sql stable as 'select count(*) from app.t$i where a = x';"
    fi
  done
} > "$work/common.sql"
{
  for i in $(seq 1 10 "$N"); do
    echo "alter table app.t$i add column e jsonb;"
    echo "create index concurrently t${i}_d on app.t$i (d) where d > 100;"
  done
  for i in $(seq 5 20 "$N"); do
    echo "drop view app.w$(( (i/10+1)*10 )) ; drop view app.v$i cascade; alter table app.t$i alter column a type bigint;"
    echo "create view app.v$i as select id, a, b, c from app.t$i where a > 1;"
  done
  for i in $(seq 7 50 "$N"); do echo "drop table app.t$i cascade;"; done
  for i in $(seq 1 $(( N / 50 ))); do echo "create table app.n$i (id int primary key, t1 bigint references app.t1(id));"; done
} > "$work/target.sql"
sed -i 's/drop view app.w\([0-9]*\) ;/drop view if exists app.w\1;/' "$work/target.sql"

native_start -c max_locks_per_transaction=1024
nurl() { echo "host=$work/sock user=lakelet dbname=$1"; }
npsql() { "$bindir/psql" -XAtq -v ON_ERROR_STOP=1 "$@"; }
npsql "$(nurl postgres)" -c "create database base" -c "create database target"
npsql "$(nurl base)" -f "$work/common.sql" >/dev/null
npsql "$(nurl target)" -f "$work/common.sql" >/dev/null
npsql "$(nurl target)" -f "$work/target.sql" >/dev/null 2>&1

echo "schema: $N tables, $(npsql "$(nurl base)" -c "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'app'") relations in app (base)"

# lakelet: the common schema on main, BASE and TARGET as branches of it.
"$L" "${D[@]}" up --api-port 0 --proxy-port 0 >/dev/null
"$L" "${D[@]}" psql main -- -XAtq -v ON_ERROR_STOP=1 -f "$work/common.sql" >/dev/null
"$L" "${D[@]}" branch create base --from main --ttl 1h >/dev/null
"$L" "${D[@]}" branch create target --from main --ttl 1h >/dev/null
"$L" "${D[@]}" psql target -- -XAtq -f "$work/target.sql" >/dev/null 2>&1

runs() { # label, command...
  local a b c t0 t1
  for v in a b c; do t0=$(ms); "${@:2}" >/dev/null; t1=$(ms); printf -v "$v" %s "$(elapsed "$t0" "$t1")"; done
  echo "$1: $(median3 "$a" "$b" "$c") ms (median of 3: $a $b $c)"
}
runs "pg_dump --schema-only, native (reference)" "$bindir/pg_dump" --schema-only "$(nurl base)"
runs "lakelet diff, two native databases      " "$L" "${D[@]}" diff --base-url "$(nurl base)" --target-url "$(nurl target)" --format sql
runs "lakelet diff, two branches via proxy     " "$L" "${D[@]}" diff base target --format sql
runs "lakelet diff, a branch against itself    " "$L" "${D[@]}" diff base base --format sql
"$L" "${D[@]}" diff --base-url "$(nurl base)" --target-url "$(nurl target)" --format json > "$work/d.json"
python3 - "$work/d.json" <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
print(f"changes: {d['summary']['changes']} ({d['summary']['actions']}), statements: {len(d['script'])}")
EOF
"$L" "${D[@]}" diff --base-url "$(nurl base)" --target-url "$(nurl target)" --format sql > "$work/m.sql"
t0=$(ms); npsql "$(nurl base)" -f "$work/m.sql" >/dev/null; t1=$(ms)
echo "applying the SQL to native BASE: $(elapsed "$t0" "$t1") ms"
left=$("$L" "${D[@]}" diff --base-url "$(nurl base)" --target-url "$(nurl target)" --format json | python3 -c 'import json,sys; print(json.load(sys.stdin)["summary"]["changes"])')
echo "changes left after applying: $left"
[ "$left" = 0 ]
