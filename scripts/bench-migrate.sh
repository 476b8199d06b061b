#!/usr/bin/env bash
# What the migration runner costs, and what a rehearsal costs, side by side with native
# Postgres on local disk in the same run (docs/BENCHMARKS.md "Migrations"):
#   1. 100 small migrations (table, 100 rows, index each): psql -f per file on native Postgres
#      (no history, no lock: the floor), `lakelet migrate` on native Postgres, and `lakelet
#      migrate` on a lakelet branch through the proxy;
#   2. the worked example's Split Column (V87) rehearsed on a throwaway branch of a tier
#      holding ROWS inventory rows (fork, apply, re-apply, compare schemas, delete), vs the
#      same proof on native Postgres without branches: CREATE DATABASE … TEMPLATE, apply,
#      re-apply, DROP DATABASE.
# Usage: scripts/bench-migrate.sh [ROWS...]   (default 10000 1000000; needs root for the
# native cluster's user switch; uses target/release/lakelet, building it if missing)
set -euo pipefail
SIZES=("${@:-10000 1000000}")
read -r -a SIZES <<<"${SIZES[*]}"
cd "$(dirname "$0")/.."
. scripts/bench-common.sh

native_start -c fsync=on
native="host=$work/sock user=lakelet dbname=postgres"
npsql() { "$bindir/psql" -XAtq -v ON_ERROR_STOP=1 "$native" "$@"; }

"$L" "${D[@]}" up --api-port 0 --proxy-port 0 >/dev/null

# 1. 100 small migrations.
mig="$work/m100"; mkdir -p "$mig"
for i in $(seq 1 100); do
  cat > "$mig/V${i}__table_$i.sql" <<EOF
CREATE TABLE t$i (id int PRIMARY KEY, v text);
INSERT INTO t$i SELECT g, md5(g::text) FROM generate_series(1, 100) g;
CREATE INDEX t${i}_v ON t$i (v);
EOF
done
npsql -c "create database floor" -c "create database runner"
t0=$(ms); for i in $(seq 1 100); do "$bindir/psql" -XAtq -v ON_ERROR_STOP=1 "host=$work/sock user=lakelet dbname=floor" -1 -f "$mig/V${i}__table_$i.sql" >/dev/null; done; t1=$(ms)
"$L" "${D[@]}" migrate migrate --url "host=$work/sock user=lakelet dbname=runner" --dir "$mig" >/dev/null 2>&1; t2=$(ms)
"$L" "${D[@]}" migrate migrate --branch main --dir "$mig" >/dev/null 2>&1; t3=$(ms)
echo "100 migrations, psql -1 -f per file, native:        $(elapsed "$t0" "$t1") ms"
echo "100 migrations, lakelet migrate, native:            $(elapsed "$t1" "$t2") ms"
echo "100 migrations, lakelet migrate, branch via proxy:  $(elapsed "$t2" "$t3") ms"
t4=$(ms); "$L" "${D[@]}" migrate migrate --branch main --dir "$mig" >/dev/null 2>&1; t5=$(ms)
echo "re-run with nothing pending (validate 100 checksums): $(elapsed "$t4" "$t5") ms"

# 2. The Split Column rehearsal.
split="$work/split"; mkdir -p "$split"
cat > "$split/V87__split_inventory_code.sql" <<'EOF'
SET lock_timeout = '5s';
ALTER TABLE inventory ADD COLUMN IF NOT EXISTS location_code text,
  ADD COLUMN IF NOT EXISTS batch_number int, ADD COLUMN IF NOT EXISTS serial_number int;
UPDATE inventory SET location_code = substr(inventory_code, 1, 4),
  batch_number = substr(inventory_code, 6, 5)::int, serial_number = substr(inventory_code, 12)::int;
EOF
for rows in "${SIZES[@]}"; do
  load="CREATE TABLE inventory (id int PRIMARY KEY, inventory_code text NOT NULL, qty int);
    INSERT INTO inventory SELECT g, 'WH' || lpad((g % 40)::text, 2, '0') || '-' || lpad((g % 997)::text, 5, '0')
      || '-' || lpad(g::text, 6, '0'), g % 100 FROM generate_series(1, $rows) g;"
  "$L" "${D[@]}" branch create "inv$rows" --from main --ttl 2h >/dev/null
  "$L" "${D[@]}" psql "inv$rows" -- -XAtq -v ON_ERROR_STOP=1 -c "$load" -c checkpoint >/dev/null
  npsql -c "create database inv$rows" >/dev/null
  "$bindir/psql" -XAtq -v ON_ERROR_STOP=1 "host=$work/sock user=lakelet dbname=inv$rows" -c "$load" -c checkpoint >/dev/null
  t0=$(ms)
  "$L" "${D[@]}" --json migrate rehearse --branch "inv$rows" --dir "$split" --table split_history >"$work/r.json" 2>/dev/null
  t1=$(ms)
  runs=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["migrations"][0]; print(m["first_run"]["execution_time_ms"], m["second_run"]["execution_time_ms"])' "$work/r.json")
  npsql -c "create database rehearse template inv$rows" >/dev/null
  tc=$(ms)
  nat=()
  for _ in 1 2; do
    ta=$(ms)
    "$bindir/psql" -XAtq -v ON_ERROR_STOP=1 "host=$work/sock user=lakelet dbname=rehearse" -1 -f "$split/V87__split_inventory_code.sql" >/dev/null 2>&1
    nat+=("$(elapsed "$ta" "$(ms)")")
  done
  npsql -c "drop database rehearse" >/dev/null
  t2=$(ms)
  read -r first second <<<"$runs"
  echo "rehearse V87 on $rows rows: lakelet $(elapsed "$t0" "$t1") ms (apply $first ms, re-apply $second ms); native $(elapsed "$t1" "$t2") ms (copy $(elapsed "$t1" "$tc") ms, apply ${nat[0]} ms, re-apply ${nat[1]} ms)"
done
