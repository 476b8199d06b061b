# Sourced (from the repository root) by the bench scripts that measure lakelet side by side
# with native Postgres on local disk: the release binary, a work directory that is removed on
# exit with the daemon and the native cluster stopped, millisecond timers, and native_start.
[ -x target/release/lakelet ] || cargo build --release --quiet
L="$PWD/target/release/lakelet"
bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
work=$(mktemp -d)
chmod 755 "$work"
D=(--data-dir "$work/data")
cleanup() {
  "$L" "${D[@]}" down >/dev/null 2>&1 || true
  runuser -u lakelet -- "$bindir/pg_ctl" -D "$work/native" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
ms() { date +%s%N; }
elapsed() { echo $(( ($2 - $1) / 1000000 )); }

# Native Postgres on local disk, as the unprivileged compute user, on a socket in $work/sock,
# no TCP; the arguments are extra server settings ("-c name=value …").
native_start() {
  mkdir -p "$work/native" "$work/sock" && chown lakelet "$work/native" "$work/sock"
  runuser -u lakelet -- "$bindir/initdb" -D "$work/native" -A trust --no-sync >/dev/null
  runuser -u lakelet -- "$bindir/pg_ctl" -D "$work/native" -w -l "$work/sock/native.log" \
    -o "-k $work/sock -c listen_addresses='' $*" start >/dev/null
}
