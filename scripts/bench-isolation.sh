#!/usr/bin/env bash
# What a uid per compute costs (docs/BENCHMARKS.md "Compute isolation"), interleaved round by
# round against a lakelet built before it (OLD, e.g. commit 28dfa65 built into another target
# directory):
#   1. branch stop, then branch start, of a branch whose parent is stopped (the lease is
#      usually the same uid as last time: nothing to copy);
#   2. branch create from a running main, then its first start (the child runs under another
#      uid than main, so WAL segments it shares with main are copied, not chowned).
# Usage: OLD=/path/to/old/lakelet scripts/bench-isolation.sh [ROUNDS]   (as root)
set -euo pipefail
ROUNDS=${1:-15}
cd "$(dirname "$0")/.."
[ -x target/release/lakelet ] || cargo build --release --quiet
NEW="$PWD/target/release/lakelet"
: "${OLD:?set OLD to a lakelet binary from before per-compute uids}"
W=$(mktemp -d)
chmod 700 "$W"
trap '"$OLD" --data-dir "$W/old" down >/dev/null 2>&1 || true; "$NEW" --data-dir "$W/new" down >/dev/null 2>&1 || true; rm -rf "$W"' EXIT
bin() { if [ "$1" = new ]; then echo "$NEW"; else echo "$OLD"; fi; }
for v in old new; do
  L=$(bin $v)
  "$L" --data-dir "$W/$v" up --api-port 0 --proxy-port 0 --idle-stop 0s >/dev/null
  "$L" --data-dir "$W/$v" psql main -- -XAtqc \
    "create table t as select g, md5(g::text) m from generate_series(1, 200000) g; checkpoint" >/dev/null
  "$L" --data-dir "$W/$v" branch create b --from main >/dev/null
  "$L" --data-dir "$W/$v" branch start b >/dev/null
done
ms() { echo $(( $(date +%s%N) / 1000000 )); }
out="$W/rounds"
for r in $(seq 1 "$ROUNDS"); do
  for v in old new; do
    L=$(bin $v); D="$W/$v"
    t0=$(ms); "$L" --data-dir "$D" branch stop b >/dev/null
    t1=$(ms); "$L" --data-dir "$D" branch start b >/dev/null
    t2=$(ms)
    "$L" --data-dir "$D" psql main -- -XAtqc "update t set m = md5(m) where g % 50 = $r" >/dev/null
    t3=$(ms); "$L" --data-dir "$D" branch create "c$r" --from main >/dev/null
    "$L" --data-dir "$D" branch start "c$r" >/dev/null
    t4=$(ms)
    "$L" --data-dir "$D" branch delete "c$r" --purge >/dev/null
    echo "$v $r stop $((t1 - t0)) start $((t2 - t1)) child $((t4 - t3))"
  done
done | tee "$out"
for v in old new; do
  for k in stop start child; do
    col=$(awk -v k=$k '{for (i = 1; i <= NF; i++) if ($i == k) print i + 1; exit}' "$out")
    m=$(awk -v v=$v -v c="$col" '$1 == v {print $c}' "$out" | sort -n |
      awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}')
    echo "median $v $k: $m ms"
  done
done
