#!/usr/bin/env bash
# Brings lakelet up and shows it working: the daemon initdb's the root branch `main` (a real
# Postgres on a FUSE view of the page store), a branch is made from it in milliseconds, each
# side is changed and queried through the Postgres proxy (one address for every branch), and
# everything is stopped again.
#
# Computes run as the unprivileged user `lakelet` (created on first start when run as root:
# Postgres refuses root). Set LAKELET_DEMO_KEEP=1 to leave the daemon running afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
lakelet_require_cargo
LAKELET_PACKAGES+=(curl)
lakelet_install_deps

echo "==> building lakelet (release)"
cargo build --release -q
ll="$PWD/target/release/lakelet"
export LAKELET_DATA_DIR="${LAKELET_DATA_DIR:-$PWD/.lakelet-demo}"
if [ "${LAKELET_DEMO_KEEP:-0}" != 1 ]; then
  trap '"$ll" down >/dev/null 2>&1 || true' EXIT
fi

# Debian's postgresql package may run its own cluster on 5432; then let the proxy pick a port.
proxy_port=5432
if (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; then
  echo "==> port 5432 is taken (a system Postgres?); the proxy will pick a free port"
  proxy_port=0
fi

set -x
"$ll" up --proxy-port "$proxy_port"
"$ll" psql main -- -c "create table if not exists greetings(id serial primary key, said text)" \
                   -c "insert into greetings(said) values ('hello from main')"
"$ll" branch delete feature-x --purge >/dev/null 2>&1 || true
"$ll" branch create feature-x --from main
"$ll" psql feature-x -- -c "insert into greetings(said) values ('only on feature-x')" \
                        -c "select * from greetings order by id"
"$ll" psql main -- -c "select * from greetings order by id"
# Any client, one address: the proxy picks the branch from the startup options.
"$ll" connstr feature-x
psql "$("$ll" connstr feature-x)" -c "select count(*) as rows_on_feature_x from greetings"
"$ll" status
# The dashboard: the same API port, signed in by the address's fragment.
curl -fsS -o /dev/null -w "dashboard page: HTTP %{http_code}\n" "$("$ll" dashboard | cut -d'#' -f1)"
{ set +x; } 2>/dev/null
echo "==> the dashboard (keep lakelet up with LAKELET_DEMO_KEEP=1 to open it): $("$ll" dashboard | cut -d'#' -f1)#token=…"
echo "==> lakelet works: data in $LAKELET_DATA_DIR ('$ll down' stops it; LAKELET_DEMO_KEEP=1 keeps it up)"
