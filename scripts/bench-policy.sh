#!/usr/bin/env bash
# What governance costs, end to end, on a real daemon (docs/BENCHMARKS.md "Policy"):
#   1. branch creation: a plain copy (owner) vs a masked copy (a developer) of a tier holding
#      2,000 customers and 5,000 orders beside a 27 MB table nobody masks;
#   2. what the masked copy diverged (own bytes) vs a plain copy that was started;
#   3. connect + SELECT 1 with psql, N times: straight to the compute's socket (native
#      Postgres), and through the proxy as the owner (superuser) and as a principal
#      (lakelet_owner), each proxy connection with its audit record fsynced.
# Usage: scripts/bench-policy.sh [N]   (uses target/release/lakelet; builds it if missing)
set -euo pipefail
N=${1:-200}
cd "$(dirname "$0")/.."
[ -x target/release/lakelet ] || cargo build --release --quiet
L="$PWD/target/release/lakelet"
work=$(mktemp -d)
trap '"$L" --data-dir "$work/data" down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
cat > "$work/lakelet.toml" <<'EOF'
[tiers.main]
production = true
[tiers.staging]
parent = "main"
[roles.platform]
create_from = ["*"]
connect = ["*"]
migrate = ["*"]
reset = ["*"]
delete = ["*"]
admin = true
[roles.developer]
create_from = ["main", "staging"]
connect = ["own"]
migrate = ["own"]
delete = ["own"]
[masking]
roles = ["developer"]
[masking.columns]
"public.customers.email" = "email"
"public.customers.name" = "hash"
"public.orders.customer_email" = "email"
EOF
D=(--data-dir "$work/data")
"$L" "${D[@]}" up --api-port 0 --proxy-port 0 --policy "$work/lakelet.toml" >/dev/null
"$L" "${D[@]}" psql main -- -XAtq -v ON_ERROR_STOP=1 -c "
  CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL, email text UNIQUE);
  INSERT INTO customers SELECT g, 'Customer Name ' || g, 'person' || g || '@example.com' FROM generate_series(1, 2000) g;
  CREATE TABLE orders (id serial PRIMARY KEY, customer_email text, amount int);
  INSERT INTO orders (customer_email, amount) SELECT 'person' || (g % 2000 + 1) || '@example.com', g FROM generate_series(1, 5000) g;
  CREATE TABLE filler (id int, pad text);
  INSERT INTO filler SELECT g, repeat('x', 900) FROM generate_series(1, 30000) g;
  CHECKPOINT;"
secret=$("$L" "${D[@]}" principal add alice --role developer | tail -1)
ms() { date +%s%N; }
t0=$(ms); "$L" "${D[@]}" branch create alice-plain-src --from main >/dev/null; t1=$(ms)
export LAKELET_PRINCIPAL=alice LAKELET_SECRET=$secret
t2=$(ms); "$L" "${D[@]}" branch create alice-masked --from main >/dev/null; t3=$(ms)
unset LAKELET_PRINCIPAL LAKELET_SECRET
echo "create plain (owner):            $(( (t1 - t0) / 1000000 )) ms"
echo "create masked (developer):       $(( (t3 - t2) / 1000000 )) ms (start, mask, vacuum full, checkpoint)"
"$L" "${D[@]}" psql alice-plain-src -- -XAtq -c checkpoint >/dev/null
plain=$("$L" "${D[@]}" --json branch usage alice-plain-src | python3 -c 'import json,sys; print(json.load(sys.stdin)["own_bytes"])')
masked=$("$L" "${D[@]}" --json branch usage alice-masked | python3 -c 'import json,sys; print(json.load(sys.stdin)["own_bytes"])')
echo "own bytes: started plain copy $plain, masked copy $masked"
proxy=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["proxy"])' "$work/data/daemon.json")
host=${proxy%:*}; port=${proxy##*:}
pw=$(cat "$work/data/password")
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
p50() { sort -n | awk '{a[NR]=$1} END {print a[int(NR*0.5)+1]/1e6 " ms p50, " a[int(NR*0.95)+1]/1e6 " ms p95"}'; }
run() { # user password branch
  for _ in $(seq "$N"); do
    s=$(ms); PGPASSWORD=$2 "$bindir/psql" -XAtq "host=$host port=$port user=$1 dbname=postgres options=branch=$3" -c 'select 1' >/dev/null; e=$(ms)
    echo $((e - s))
  done | p50
}
run postgres "$pw" main >/dev/null   # warm
sock=$("$L" "${D[@]}" --json branch start main | python3 -c 'import json,sys; print(json.load(sys.stdin)["socket_dir"])')
direct=$(for _ in $(seq "$N"); do
  s=$(ms); "$bindir/psql" -XAtq "host=$sock user=postgres dbname=postgres" -c 'select 1' >/dev/null; e=$(ms); echo $((e - s))
done | p50)
echo "connect + SELECT 1, the compute's own socket:  $direct"
echo "connect + SELECT 1, owner (superuser):       $(run postgres "$pw" main)"
echo "connect + SELECT 1, principal (lakelet_owner): $(run alice "$secret" alice-masked)"
echo "audit records: $(wc -l < "$work/data/audit.jsonl")"
