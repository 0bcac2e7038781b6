#!/usr/bin/env bash
# Prints the path of a Python 3.13 (LocalStack 4.14 and the benchmark's peers need it):
# python3.13 on PATH, else pyenv's versions/3.13*. Exits 1 with a hint when there is none.
set -euo pipefail
if command -v python3.13 >/dev/null 2>&1 && python3.13 -c '' 2>/dev/null; then
    command -v python3.13
    exit 0
fi
root="$( (pyenv root 2>/dev/null) || echo "${PYENV_ROOT:-$HOME/.pyenv}")"
for candidate in "$root"/versions/3.13*/bin/python3.13; do
    if [[ -x "$candidate" ]]; then
        echo "$candidate"
        exit 0
    fi
done
echo "Python 3.13 not found: put python3.13 on PATH or install it with pyenv (pyenv install 3.13)" >&2
exit 1
