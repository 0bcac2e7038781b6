#!/usr/bin/env bash
# Deploy and validation tools from infra/requirements.lock (aws-sam-cli, cfn-lint) and
# infra/checkov.lock (checkov), in venvs under ${ETL_CACHE_DIR:-~/.cache/serverless-etl};
# installed on first use.
#
#   infra/tools.sh validate     cfn-lint on the template and on each state machine definition,
#                               `sam validate --lint`, then checkov on the template
#   infra/tools.sh sam ARGS...  run the pinned SAM CLI (make deploy / destroy use it)
#   infra/tools.sh python ARGS...  python with SAM CLI's boto3 (make deploy's Glue package upload)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export SAM_CLI_TELEMETRY=0

# Sets VENV (installing it on first use).
install() { VENV="$("$HERE/../tests/venv.sh" "$HERE/requirements.lock" deploy)"; }

validate() {
    install
    cd "$HERE"
    "$VENV/bin/cfn-lint" template.yaml
    "$VENV/bin/python" lint_statemachines.py ../statemachines/*.asl.json
    # sam validate needs a region but no credentials or network.
    AWS_DEFAULT_REGION="${AWS_DEFAULT_REGION:-us-east-1}" "$VENV/bin/sam" validate --lint \
        --template template.yaml
    local checkov
    checkov="$("$HERE/../tests/venv.sh" "$HERE/checkov.lock" checkov)"
    # --skip-download: no calls to Prisma Cloud for guidelines (this needs no account or network).
    # Checks that do not apply are skipped in each resource's Metadata, with the reason.
    "$checkov/bin/checkov" --file template.yaml --framework cloudformation --skip-download \
        --compact --quiet
}

case "${1:-}" in
    validate) validate ;;
    sam) shift; install; exec "$VENV/bin/sam" "$@" ;;
    python) shift; install; exec "$VENV/bin/python" "$@" ;;
    *) echo "usage: $0 {validate|sam ARGS...|python ARGS...}" >&2; exit 2 ;;
esac
