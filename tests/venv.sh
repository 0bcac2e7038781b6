#!/usr/bin/env bash
# A venv of pinned tools, made once per lock file content, under the cache dir:
#
#   tests/venv.sh LOCK NAME    prints ${ETL_CACHE_DIR:-~/.cache/serverless-etl}/NAME-<lock hash>
#
# The lock lists every package, so it is installed with --no-deps (system python3).
set -euo pipefail
lock="$1" name="$2"
venv="${ETL_CACHE_DIR:-$HOME/.cache/serverless-etl}/$name-$(sha256sum "$lock" | cut -c1-12)"
if [[ ! -f "$venv/.installed" ]]; then
    printf 'venv.sh: creating %s\n' "$venv" >&2
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$lock" >&2
    touch "$venv/.installed"
fi
echo "$venv"
