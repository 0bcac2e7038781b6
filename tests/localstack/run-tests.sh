#!/usr/bin/env bash
# The LocalStack harness proof: builds the probe Lambda with cargo-lambda, makes sure LocalStack
# answers (starting host-mode LocalStack if nothing does, and stopping it again afterwards),
# and runs the pytest suite in tests/localstack/tests. Extra arguments go to pytest.
#
# With ETL_LOCALSTACK_ENDPOINT set (e.g. a stock LocalStack with Docker), that endpoint must
# already answer; nothing is started.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEFAULT_ENDPOINT="http://127.0.0.1:4566"
ENDPOINT="${ETL_LOCALSTACK_ENDPOINT:-$DEFAULT_ENDPOINT}"

log() { printf 'run-tests.sh: %s\n' "$*" >&2; }

bash "$HERE/localstack.sh" install
PYTHON="$(bash "$HERE/localstack.sh" python)"
ZIP="$(bash "$HERE/tools.sh" build-probe)"
log "probe Lambda: $ZIP"

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
# No caches or bytecode in the source tree.
PYTHONDONTWRITEBYTECODE=1 ETL_PROBE_ZIP="$ZIP" ETL_LOCALSTACK_ENDPOINT="$ENDPOINT" \
    "$PYTHON" -m pytest tests -p no:cacheprovider -rfE "$@"
