# Sourced by demo.sh and test.sh: installs, through the system package manager, whatever
# lakelet needs that the machine lacks. Only Debian/Ubuntu (apt) is automated.
set -euo pipefail

# Build: the system RocksDB (see docs/ARCHITECTURE.md, "RocksDB route") and libclang for its
# bindings. Run: Postgres (each branch's compute) and fuse3 (the FUSE view, next layer).
LAKELET_PACKAGES=(librocksdb-dev libsnappy-dev libclang-dev clang pkg-config postgresql fuse3)

lakelet_install_deps() {
  local missing=()
  for p in "${LAKELET_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if ! command -v apt-get >/dev/null; then
    echo "error: lakelet needs these packages and this system has no apt-get: ${missing[*]}" >&2
    return 1
  fi
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || { echo "error: installing ${missing[*]} needs root (or sudo)" >&2; return 1; }
    sudo="sudo"
  fi
  echo "==> installing ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

lakelet_require_cargo() {
  command -v cargo >/dev/null || { echo "error: cargo not found; install the Rust toolchain (rustup.rs)" >&2; return 1; }
}
