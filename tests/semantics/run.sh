#!/usr/bin/env bash
# The expression semantics suite: the engine's `etl` binary against DuckDB 2.0.
#   tests/semantics/run.sh [pytest args]      SEED=n COUNT=n for the random test
# Needs the release binary under ${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
venv="$("$here/../venv.sh" "$here/requirements.lock" semantics)"
# The whole folder unless the arguments name test files or nodes themselves.
target=("$here")
for a in "$@"; do
    if [[ "$a" != -* && ( -e "$a" || "$a" == *::* ) ]]; then target=(); fi
done
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider --rootdir "$here" "$@" "${target[@]}"
