#!/usr/bin/env bash
# Brings lakelet up and shows it working: a real Postgres data directory stored in the page
# store, a branch made in O(1), a change on the branch that the parent does not see, and a
# byte-for-byte export. (The daemon, computes and proxy arrive with the next layers.)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
lakelet_require_cargo
lakelet_install_deps

echo "==> building lakelet (release)"
cargo build --release -q
ll=target/release/lakelet
work=$(mktemp -d /tmp/lakelet-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
data="$work/lakelet"

echo "==> making a Postgres data directory with the system's initdb"
bindir=$(pg_config --bindir 2>/dev/null || true)
[ -x "$bindir/initdb" ] || bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
if [ "$(id -u)" -eq 0 ]; then
  # Postgres refuses to run as root: initdb runs as the unprivileged postgres user.
  chown postgres: "$work"
  runuser -u postgres -- "$bindir/initdb" -D "$work/pgdata" -A trust --no-sync >/dev/null
else
  "$bindir/initdb" -D "$work/pgdata" -A trust --no-sync >/dev/null
fi

set -x
$ll --data-dir "$data" init
$ll --data-dir "$data" import "$work/pgdata" --branch main
$ll --data-dir "$data" branch create feature-x --from main
$ll --data-dir "$data" branch list
$ll --data-dir "$data" branch usage feature-x
{ set +x; } 2>/dev/null

echo "==> changing the branch only: a new file in feature-x"
mkdir "$work/change" && echo "only on feature-x" > "$work/change/NOTE"
$ll --data-dir "$data" import "$work/change" --branch feature-x >/dev/null
$ll --data-dir "$data" export "$work/main-out" --branch main >/dev/null
$ll --data-dir "$data" export "$work/feature-out" --branch feature-x >/dev/null
diff -r "$work/pgdata" "$work/main-out" && echo "main: identical to the original data directory, byte for byte"
[ -f "$work/feature-out/NOTE" ] && [ ! -f "$work/main-out/NOTE" ] && echo "feature-x: has its change; main does not"
$ll --data-dir "$data" branch usage feature-x
$ll --data-dir "$data" branch retained main
echo "==> lakelet works"
