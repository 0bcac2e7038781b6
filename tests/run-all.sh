#!/usr/bin/env bash
# The whole test suite, as `make test` and CI run it: LocalStack up (unless an endpoint is
# given or it already runs), every Rust test (unit tests, and integration tests that call
# the handlers against LocalStack), the differential test of spec semantics against DuckDB,
# the Spark runner against the engine, then the LocalStack harness suite. LocalStack is stopped
# again only if this script started it.
set -euo pipefail
cd "$(dirname "$0")/.."

started=0
if [[ -z "${ETL_LOCALSTACK_ENDPOINT:-}" ]] && ! tests/localstack/localstack.sh status >/dev/null 2>&1; then
    tests/localstack/localstack.sh up
    started=1
fi
stop() {
    local status=$?
    if (( started )); then
        tests/localstack/localstack.sh down || true
    fi
    exit "$status"
}
trap stop EXIT

cargo test --release --workspace --locked
# The spec semantics against DuckDB, on the `etl` binary the cargo tests just built.
tests/semantics/run.sh
# The Spark runner against the engine, on the same binary (one SparkSession, local[1]).
tests/spark/run.sh
tests/localstack/run-tests.sh
