#!/usr/bin/env bash
# The Python suites against LocalStack: builds every Lambda zip with cargo-lambda, makes sure
# LocalStack answers (starting host-mode LocalStack if nothing does, and stopping it again
# afterwards), and runs pytest on the harness proof (tests/localstack/tests) and the
# end-to-end tests of the deployed template (tests/e2e). Extra arguments go to pytest
# (e.g. a path to run one suite).
#
# With ETL_LOCALSTACK_ENDPOINT set (e.g. a stock LocalStack with Docker), that endpoint must
# already answer; nothing is started.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEFAULT_ENDPOINT="http://127.0.0.1:${ETL_LOCALSTACK_PORT:-4566}"
ENDPOINT="${ETL_LOCALSTACK_ENDPOINT:-$DEFAULT_ENDPOINT}"

log() { printf 'run-tests.sh: %s\n' "$*" >&2; }

bash "$HERE/localstack.sh" install
PYTHON="$(bash "$HERE/localstack.sh" python)"
LAMBDA_DIR="$(bash "$HERE/tools.sh" build-lambdas)"
ZIP="$LAMBDA_DIR/probe-lambda/bootstrap.zip"
log "Lambda zips: $LAMBDA_DIR"
# The Glue job's package (the deployed template points the job at it): the etl binary
# plans every spec.
make -C "$HERE/../.." --no-print-directory glue-package >&2

started_here=0
if ! curl -fsS --max-time 2 "$ENDPOINT/_localstack/health" >/dev/null 2>&1; then
    if [[ "$ENDPOINT" != "$DEFAULT_ENDPOINT" ]]; then
        log "error: nothing answers at ETL_LOCALSTACK_ENDPOINT=$ENDPOINT"
        exit 1
    fi
    bash "$HERE/localstack.sh" up
    started_here=1
fi

finish() {
    local status=$?
    if (( status != 0 )) && (( started_here )); then
        log "tests failed; last lines of the LocalStack log:"
        tail -n 60 "${ETL_BUILD_DIR:-$HERE/../../build}/localstack/localstack.log" >&2 || true
    fi
    if (( started_here )); then
        bash "$HERE/localstack.sh" down
    fi
    exit "$status"
}
trap finish EXIT

cd "$HERE"
(( $# )) || set -- tests ../e2e
# No caches or bytecode in the source tree.
PYTHONDONTWRITEBYTECODE=1 ETL_PROBE_ZIP="$ZIP" ETL_LAMBDA_DIR="$LAMBDA_DIR" \
    ETL_LOCALSTACK_ENDPOINT="$ENDPOINT" "$PYTHON" -m pytest -p no:cacheprovider -rfE "$@"
