#!/usr/bin/env bash
# The whole test suite, from a fresh machine with only the Rust toolchain and Python:
# formatting, lints, unit tests and end-to-end tests against the simulator.
# Usage: scripts/test.sh [extra cargo test args]
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds are kept outside the clone so a fresh clone (and CI) rebuilds only what changed.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/wxcc-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Python tools the end-to-end tests drive: an S3-compatible server (moto) and three other
# Parquet readers (pyarrow, DuckDB, Spark) to prove the tables are readable unchanged elsewhere;
# Prometheus' own text parser for the metrics file; jsonschema for the OpenLineage events;
# kubernetes-validate (offline schemas) for deploy/kubernetes.
# Installed once into a venv outside the clone; reinstalled only when something is missing.
VENV="${WXCC_TEST_VENV:-$HOME/.cache/wxcc-venv}"
if ! "$VENV/bin/python" -c 'import moto, pyarrow, duckdb, pyspark, prometheus_client, jsonschema, kubernetes_validate' >/dev/null 2>&1; then
  echo "== installing test tools into $VENV (moto[server], pyarrow, duckdb, pyspark, prometheus-client, jsonschema, kubernetes-validate)"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]' pyarrow duckdb 'pyspark>=4' prometheus-client \
    jsonschema kubernetes-validate
fi
export WXCC_TEST_PYTHON="$VENV/bin/python"

# Airflow, to import deploy/airflow with Airflow's own DagBag: heavy, so in a venv of its own,
# installed once (with Airflow's constraints file when it can be fetched). Without it the DAG
# test falls back to py_compile and a syntax-tree check (delete .install-failed to try again).
AIRFLOW_VENV="${WXCC_TEST_AIRFLOW_VENV:-$HOME/.cache/wxcc-airflow-venv}"
AIRFLOW_VERSION=3.3.2
if [ ! -e "$AIRFLOW_VENV/.install-failed" ] && ! "$AIRFLOW_VENV/bin/python" -c 'import airflow' >/dev/null 2>&1; then
  echo "== installing Airflow $AIRFLOW_VERSION into $AIRFLOW_VENV (once; several minutes)"
  python3 -m venv "$AIRFLOW_VENV"
  PYV="$(python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')"
  CONSTRAINTS="https://raw.githubusercontent.com/apache/airflow/constraints-$AIRFLOW_VERSION/constraints-$PYV.txt"
  if curl -fsS --max-time 20 -o /dev/null "$CONSTRAINTS"; then
    "$AIRFLOW_VENV/bin/pip" install --quiet --disable-pip-version-check \
      "apache-airflow==$AIRFLOW_VERSION" --constraint "$CONSTRAINTS" || touch "$AIRFLOW_VENV/.install-failed"
  else
    "$AIRFLOW_VENV/bin/pip" install --quiet --disable-pip-version-check \
      "apache-airflow==$AIRFLOW_VERSION" || touch "$AIRFLOW_VENV/.install-failed"
  fi
fi
export WXCC_TEST_AIRFLOW_PYTHON="$AIRFLOW_VENV/bin/python"

# Azurite (Azure Blob emulator) and Azure's SDK (to create a container) from the npm registry.
NODE_DIR="${WXCC_TEST_NODE_DIR:-$HOME/.cache/wxcc-node}"
if [ ! -x "$NODE_DIR/node_modules/.bin/azurite-blob" ] || [ ! -d "$NODE_DIR/node_modules/@azure/storage-blob" ]; then
  echo "== installing test tools into $NODE_DIR (azurite, @azure/storage-blob)"
  mkdir -p "$NODE_DIR"
  npm install --prefix "$NODE_DIR" --no-audit --no-fund --silent azurite@3 @azure/storage-blob@12
fi
export WXCC_TEST_NODE_MODULES="$NODE_DIR/node_modules"

# A Java runtime for Spark (pyspark 4 needs Java 17 or later): Debian's, when there is none.
if ! command -v java >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing a Java runtime (apt-get default-jre-headless)"
    apt-get install -y default-jre-headless >/dev/null || { apt-get update >/dev/null && apt-get install -y default-jre-headless >/dev/null; }
  else
    echo "== java not found and cannot be installed here: the Spark test will skip (fail under CI)"
  fi
fi

# Headless Chromium (Debian's package) renders `wxcc report` pages for the report tests.
if ! command -v chromium >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "== installing chromium (apt-get)"
    apt-get install -y chromium >/dev/null || { apt-get update >/dev/null && apt-get install -y chromium >/dev/null; }
  else
    echo "== chromium not found and cannot be installed here: report tests will skip (fail under CI)"
  fi
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy"
cargo clippy --all-targets --locked -- -D warnings

echo "== cargo check of the lighter feature sets (the cfg gates stay honest)"
# (clippy, not RUSTFLAGS=-D warnings: changing RUSTFLAGS would rebuild every dependency)
cargo clippy --locked --quiet --no-default-features --features aws,gcp,azure -- -D warnings
cargo clippy --locked --quiet --no-default-features -- -D warnings

echo "== cargo test"
# Unit and end-to-end tests (no doc-tests: there are none, and their empty run would be the
# last line a reader sees). The closing line sums every test binary's result.
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
cargo test --locked --lib --tests "$@" 2>&1 | tee "$log"
awk '/^test result:/ { passed += $4; failed += $6 }
     END { printf "wxcc: %d passed, %d failed\n", passed, failed }' "$log"
