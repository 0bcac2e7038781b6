#!/usr/bin/env bash
# The Spark runner against the engine: every spec through `etl run` and the PySpark runner
# (infra/glue/etl_spark) on the same generated dirty inputs, outputs compared.
#   tests/spark/run.sh [pytest args]
# Needs the release binary under ${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release
# and Java 17.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$("$here/../venv.sh" "$here/requirements.lock" spark)"
# Spark's Python workers import the runner's functions too.
export PYTHONPATH="$here/../../infra/glue${PYTHONPATH:+:$PYTHONPATH}"
target=("$here")
for a in "$@"; do
    if [[ "$a" != -* && ( -e "$a" || "$a" == *::* ) ]]; then target=(); fi
done
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider --rootdir "$here" "$@" "${target[@]}"
