#!/usr/bin/env bash
# Build tools for Lambda zips (cargo-lambda from PyPI), and the probe Lambda used by the tests.
#
#   tools.sh install       venv with cargo-lambda (idempotent); prints nothing else
#   tools.sh cargo-lambda  print the path of the cargo-lambda binary
#   tools.sh build-lambdas build every function (and the probe) as zips; print their directory
#
# Builds use --compiler cargo and --disable-optimizations: cargo-lambda's release
# "optimizations" set panic=abort, LTO, strip and -C target-cpu=haswell, which changes every
# crate's build flags and recompiles the whole dependency tree a second time next to the one
# `cargo build --release` / `cargo test --release` use. Without them both share one tree.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"

# Sets VENV (installing it on first use).
cmd_install() { VENV="$("$REPO/tests/venv.sh" "$HERE/tools-requirements.txt" tools)"; }

# Same target dir as plain cargo: CARGO_TARGET_DIR if set, else the workspace's target/.
target_dir() { echo "${CARGO_TARGET_DIR:-$REPO/target}"; }

# Zips land in <target>/lambda/<binary>/bootstrap.zip.
cmd_build_lambdas() {
    cmd_install
    # --workspace, not -p <name>: one feature set for shared dependencies, the same as
    # `cargo build/test --workspace`, so nothing (polars, the SDK) compiles twice.
    (cd "$REPO" && "$VENV/bin/cargo-lambda" lambda build --release --compiler cargo \
        --disable-optimizations --workspace --output-format zip --quiet) >&2
    echo "$(target_dir)/lambda"
}

case "${1:-}" in
    install) cmd_install ;;
    cargo-lambda) cmd_install; echo "$VENV/bin/cargo-lambda" ;;
    build-lambdas) cmd_build_lambdas ;;
    *) echo "usage: $0 {install|cargo-lambda|build-lambdas}" >&2; exit 2 ;;
esac
