#!/usr/bin/env bash
# What an A/B experiment costs on a ~1 GB parent (docs/BENCHMARKS.md "Experiments"): the time
# to fork each design's branch and apply its migrations, against the time its workload runs;
# and, for scale, what the fork replaces on native Postgres on local disk in the same run:
# CREATE DATABASE … TEMPLATE of the same data (one copy per design).
# Usage: scripts/bench-experiment.sh [ROWS] [RUNS] [TRANSACTIONS]
#   (default 6500000 rows ≈ 1 GB, 5 measured runs of 2000 transactions per design)
set -euo pipefail
ROWS=${1:-6500000}; RUNS=${2:-5}; TX=${3:-2000}
cd "$(dirname "$0")/.."
. scripts/bench-common.sh

native_start -c fsync=on
native="host=$work/sock user=lakelet dbname=postgres"
npsql() { "$bindir/psql" -XAtq -v ON_ERROR_STOP=1 "$native" "$@"; }
"$L" "${D[@]}" up --api-port 0 --proxy-port 0 >/dev/null

load="CREATE TABLE inventory (id bigint PRIMARY KEY, location_code text, batch_number int,
    serial_number int, qty int, note text);
  INSERT INTO inventory SELECT g, 'WH' || lpad((g % 40)::text, 2, '0'), g % 997, g, g % 100,
    repeat(md5(g::text), 3) FROM generate_series(1, $ROWS) g;"
proj="$work/proj"; mkdir -p "$proj/migrations" "$proj/designs/btree" "$proj/designs/hash"
printf '[migrations]\ndir = "migrations"\n' > "$proj/lakelet.toml"
printf '%s\n' "$load" > "$proj/migrations/V1__inventory.sql"
read_path="CREATE OR REPLACE FUNCTION inventory_at(loc text, batch int) RETURNS SETOF inventory
  LANGUAGE sql STABLE AS \$\$ SELECT * FROM inventory WHERE location_code = loc AND batch_number = batch \$\$;"
printf 'SET lock_timeout = %s;\nCREATE INDEX inventory_loc_batch ON inventory (location_code, batch_number);\n%s\n' "'5s'" "$read_path" \
  > "$proj/designs/btree/V100__btree.sql"
printf 'SET lock_timeout = %s;\nCREATE INDEX inventory_batch_hash ON inventory USING hash (batch_number);\n%s\n' "'5s'" "$read_path" \
  > "$proj/designs/hash/V100__hash.sql"
cat > "$proj/reads.sql" <<'SQL'
-- lakelet:weight 9
SELECT count(*) FROM inventory_at('WH' || lpad((random() * 39)::int::text, 2, '0'), (random() * 996)::int);
-- lakelet:weight 1
SELECT sum(qty) FROM inventory_at('WH07', 7);
SQL

t0=$(ms)
(cd "$proj" && "$L" "${D[@]}" migrate migrate --branch main >/dev/null 2>&1)
"$L" "${D[@]}" psql main -- -XAtq -c checkpoint >/dev/null
t1=$(ms)
size=$("$L" "${D[@]}" psql main -- -XAtq -c "select pg_size_pretty(pg_database_size('postgres'))")
echo "parent: $ROWS rows, $size, loaded through the proxy in $(elapsed "$t0" "$t1") ms"

(cd "$proj" && "$L" "${D[@]}" --json experiment --title "btree or hash" --from main \
  --design btree=designs/btree --design hash=designs/hash --workload reads.sql \
  --runs "$RUNS" --warmup 1 --transactions "$TX" --decisions "$work/decisions") > "$work/exp.json"
python3 - "$work/exp.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
for f in d["designs"]:
    work = f["transactions"] / f["throughput_tps"] * 1e3
    print(f'design {f["design"]:6}: fork {f["fork_ms"]:7.0f} ms, migrate {f["migrate_ms"]:8.0f} ms, '
          f'workload {work:8.0f} ms ({f["transactions"]} tx, {f["throughput_tps"]:.0f} tx/s, '
          f'p50 {f["p50_ms"]:.3f} ms, p95 {f["p95_ms"]:.3f} ms), tables {f["tables_bytes"] >> 20} MiB')
print("chosen:", d["chosen"], "by", d["chosen_by"])
PY

# Native: the copy a fork replaces, once per design.
npsql -c "create database inv" >/dev/null
"$bindir/psql" -XAtq -v ON_ERROR_STOP=1 "host=$work/sock user=lakelet dbname=inv" -c "$load" -c checkpoint >/dev/null
for d in btree hash; do
  t0=$(ms); npsql -c "create database $d template inv" >/dev/null; t1=$(ms)
  echo "native CREATE DATABASE $d TEMPLATE inv: $(elapsed "$t0" "$t1") ms"
done
