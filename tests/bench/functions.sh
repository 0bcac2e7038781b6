#!/usr/bin/env bash
# make bench-functions: the deployment figures of the five Lambda functions.
#   1. zipped package size of the `dist` profile build (cargo-lambda) against the limits;
#   2. cold start (process start to first Runtime API poll, coldstart.py) of those dist
#      bootstraps and, for comparison, of the release binaries `make etl` builds;
#   3. kinesis-consumer decode + aggregate throughput (examples/throughput.rs), one core.
# DIST_TARGET_DIR (default: CARGO_TARGET_DIR, else target/) is where the dist build goes: the
# dist build compiles polars with LTO, so a separate dir lets it run beside other builds.
# COLDSTART_RUNS (default 20) runs per function. Figures are printed, not asserted.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
TRIPLE=x86_64-unknown-linux-gnu
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
DIST="${DIST_TARGET_DIR:-$TARGET}"
FUNCTIONS=(s3-processor api-ingester source-data-checker job-status-checker kinesis-consumer)
command -v taskset >/dev/null || { echo "bench: taskset (util-linux) is needed to pin to one core" >&2; exit 1; }

# --workspace: one feature set for shared dependencies, as in every other build here
# (a subset would re-resolve features and recompile polars). No --release: cargo-lambda's
# own release tweaks (target-cpu etc.) would override [profile.dist]. Zips go to lambda-dist/,
# not lambda/, where `make build` keeps the release zips that deploys and tests use.
ZIPS="$DIST/lambda-dist"
CARGO_LAMBDA="$("$REPO/tests/localstack/tools.sh" cargo-lambda)"
(cd "$REPO" && CARGO_TARGET_DIR="$DIST" "$CARGO_LAMBDA" lambda build --profile dist \
    --compiler cargo --workspace --locked --output-format zip --lambda-dir "$ZIPS")

echo
echo "Zipped packages (dist profile), MB = 10^6 bytes"
echo
echo "| function | zip MB | binary MB | limit MB | within |"
echo "|---|---|---|---|---|"
for f in "${FUNCTIONS[@]}"; do
    zip="$ZIPS/$f/bootstrap.zip"
    limit=6; [[ $f == s3-processor ]] && limit=15
    awk -v f="$f" -v z="$(stat -c %s "$zip")" -v b="$(stat -c %s "$DIST/$TRIPLE/dist/$f")" -v l="$limit" \
        'BEGIN { printf "| %s | %.2f | %.2f | %d | %s |\n", f, z/1e6, b/1e6, l, (z <= l*1e6 ? "yes" : "**no**") }'
done

RELEASE="$TARGET/$TRIPLE/release"
dirs=("$ZIPS")
if [[ -x "$RELEASE/s3-processor" ]]; then
    dirs+=("$RELEASE")
else
    echo "bench: no release binaries in $RELEASE (make etl): dist only" >&2
fi
python3 "$HERE/coldstart.py" --runs "${COLDSTART_RUNS:-20}" "${dirs[@]}"

# Release, like the example's own doc line; --workspace for the shared feature set.
(cd "$REPO" && cargo build --release --workspace --locked --example throughput)
echo
echo "kinesis-consumer decode + aggregate, 10,000-record batches, one core (target >= 200,000 records/s):"
taskset -c 0 "$TARGET/$TRIPLE/release/examples/throughput"
