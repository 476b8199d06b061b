#!/usr/bin/env bash
# Runs the whole test suite, installing what it needs first. Long runs behind variables:
#   LAKELET_MODEL_CASES (default 3000), LAKELET_MODEL_STEPS (60), LAKELET_CRASH_ROUNDS (25).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
lakelet_require_cargo
# The proxy tests also drive a Python client (psycopg2, on libpq).
LAKELET_PACKAGES+=(python3 python3-psycopg2)
lakelet_install_deps

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> building benches (compile only; run them with cargo bench)"
cargo build --benches -q
echo "==> cargo test"
cargo test --no-fail-fast
