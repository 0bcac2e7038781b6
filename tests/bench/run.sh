#!/usr/bin/env bash
# make bench: the Rust engine against pandas, polars, DuckDB and the Spark runner on one
# generated file.
#   ROWS (default 1000000) rows of dirty customers data from `etl generate`; ROUNDS (default
#   3) runs of every engine, of which the table shows the median; SPARK_ROUNDS (default 1)
#   of those rounds also run the Spark runner (slow), on all cores only;
#   the peers run from a venv this script makes (Python 3.13, tests/bench/requirements.txt),
#   the Spark runner from tests/spark's venv (made here if missing).
# Prints a markdown table; results.json lands beside the outputs in build/bench/.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
ROWS="${ROWS:-1000000}"
WORK="${ETL_BUILD_DIR:-$REPO/build}/bench"
CACHE_DIR="${ETL_CACHE_DIR:-$HOME/.cache/serverless-etl}"
VENV="$CACHE_DIR/bench-$(sha256sum "$HERE/requirements.txt" | cut -c1-12)"
ETL="${CARGO_TARGET_DIR:-$REPO/target}/x86_64-unknown-linux-gnu/release/etl"


if [[ ! -f "$VENV/.installed" ]]; then
    rm -rf "$VENV"
    "$("$REPO/tests/python313.sh")" -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
    touch "$VENV/.installed"
fi
command -v taskset >/dev/null || { echo "bench: taskset (util-linux) is needed to pin to one core" >&2; exit 1; }

SPARK_VENV=""
if [[ "${SPARK_ROUNDS:-1}" != 0 ]]; then
    SPARK_VENV="$("$REPO/tests/venv.sh" "$REPO/tests/spark/requirements.lock" spark)"
fi
export SPARK_VENV

mkdir -p "$WORK"
INPUT="$WORK/customers-$ROWS.csv"
[[ -f "$INPUT" ]] || "$ETL" generate --rows "$ROWS" --output "$INPUT" --expect "$WORK/customers-$ROWS.expect.json"
"$VENV/bin/python" "$HERE/run.py" "$ETL" "$INPUT" "$WORK"
