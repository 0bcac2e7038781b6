#!/usr/bin/env bash
# Deploy and validation tools from infra/requirements.lock (aws-sam-cli, cfn-lint), in a venv
# under ${ETL_CACHE_DIR:-~/.cache/serverless-etl}; installed on first use.
#
#   infra/tools.sh validate     cfn-lint on the template and on each state machine definition,
#                               then `sam validate --lint`
#   infra/tools.sh sam ARGS...  run the pinned SAM CLI (make deploy / destroy use it)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOCK="$HERE/requirements.lock"
CACHE_DIR="${ETL_CACHE_DIR:-$HOME/.cache/serverless-etl}"
VENV="$CACHE_DIR/deploy-$(sha256sum "$LOCK" | cut -c1-12)"
export SAM_CLI_TELEMETRY=0

install() {
    [[ -f "$VENV/.installed" ]] && return 0
    printf 'infra/tools.sh: creating %s\n' "$VENV" >&2
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -r "$LOCK"
    touch "$VENV/.installed"
}

validate() {
    install
    cd "$HERE"
    "$VENV/bin/cfn-lint" template.yaml
    "$VENV/bin/python" lint_statemachines.py ../statemachines/*.asl.json
    # sam validate needs a region but no credentials or network.
    AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" "$VENV/bin/sam" validate --lint \
        --template template.yaml
}

case "${1:-}" in
    validate) validate ;;
    sam) shift; install; exec "$VENV/bin/sam" "$@" ;;
    *) echo "usage: $0 {validate|sam ARGS...}" >&2; exit 2 ;;
esac
