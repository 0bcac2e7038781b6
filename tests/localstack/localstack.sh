#!/usr/bin/env bash
# LocalStack in host mode (no Docker) for local runs and tests.
#
#   localstack.sh install   venv with the locked LocalStack + our plugins (idempotent)
#   localstack.sh up        start on 127.0.0.1:$ETL_LOCALSTACK_PORT (4566) in the background
#   localstack.sh down      stop it (and the Lambda bootstrap processes it started)
#   localstack.sh status    say whether it runs; exit 1 if not
#   localstack.sh env       print export lines for the AWS CLI / SDKs
#   localstack.sh lock      maintainers: regenerate requirements.lock from the shared constraints
#
# Settings (environment): ETL_CACHE_DIR (venvs, default ~/.cache/serverless-etl),
# ETL_BUILD_DIR (state and logs, default <repo>/build), ETL_LOCALSTACK_PORT (4566; a second
# instance needs its own port and build dir), ETL_LOCALSTACK_UP_TIMEOUT (s, 120),
# ETL_GLUE_PYTHON (the Python that runs Glue job scripts; default: the Spark venv's, made by
# tests/venv.sh from tests/spark/requirements.lock, so jobs use the pinned pyspark).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
LOCK="$HERE/requirements.lock"
PLUGIN_DIR="$HERE/plugin"
CONSTRAINTS="$REPO/../shared/localstack/constraints-4.14.0.txt"
LOCALSTACK_SPEC='localstack-core[runtime]==4.14.0'

CACHE_DIR="${ETL_CACHE_DIR:-$HOME/.cache/serverless-etl}"
BUILD_DIR="${ETL_BUILD_DIR:-$REPO/build}/localstack"
PID_FILE="$BUILD_DIR/localstack.pid"
LOG_FILE="$BUILD_DIR/localstack.log"
HOST=127.0.0.1
PORT="${ETL_LOCALSTACK_PORT:-4566}"
ENDPOINT="http://$HOST:$PORT"
UP_TIMEOUT="${ETL_LOCALSTACK_UP_TIMEOUT:-120}"

log() { printf 'localstack.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

lock_hash() { sha256sum "$LOCK" | cut -c1-12; }
venv_dir() { echo "$CACHE_DIR/localstack-$(lock_hash)"; }

find_python313() { "$REPO/tests/python313.sh" || die "LocalStack 4.14 needs Python 3.13"; }

# Hash of the plugin's sources: the plugin is reinstalled whenever they change.
plugin_hash() {
    (cd "$PLUGIN_DIR" && find . -type f \( -name '*.py' -o -name '*.toml' \) -not -path '*/__pycache__/*' \
        | LC_ALL=C sort | xargs sha256sum | sha256sum | cut -c1-16)
}

cmd_install() {
    [[ -f "$LOCK" ]] || die "missing $LOCK (run: $0 lock)"
    local venv py
    venv="$(venv_dir)"
    py="$venv/bin/python"
    if [[ ! -f "$venv/.lock-installed" ]]; then
        log "creating $venv (first run: a few minutes)"
        rm -rf "$venv"
        "$(find_python313)" -m venv "$venv"
        # --no-deps: the lock is the complete, resolved set; nothing else may slip in.
        "$py" -m pip install --quiet --disable-pip-version-check --no-deps -r "$LOCK"
        "$py" -m pip check >/dev/null || { "$py" -m pip check >&2; die "locked set is inconsistent"; }
        touch "$venv/.lock-installed"
    fi
    local want
    want="$(plugin_hash)"
    if [[ "$(cat "$venv/.plugin-installed" 2>/dev/null || true)" != "$want" ]]; then
        log "installing the etl-localstack plugin ($want)"
        # Build from a copy so setuptools leaves no build/ or egg-info in the source tree.
        local tmp
        tmp="$(mktemp -d)"
        cp -r "$PLUGIN_DIR/." "$tmp/"
        "$py" -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
            --force-reinstall "$tmp" >/dev/null
        rm -rf "$tmp"
        echo "$want" >"$venv/.plugin-installed"
    fi
    # Kinesis in LocalStack is kinesis-mock from npm; fetch it now, not during the first test.
    if [[ ! -f "$CACHE_DIR/localstack-lib/.kinesis-mock-installed" ]]; then
        log "installing kinesis-mock (npm) for LocalStack's Kinesis"
        prepare_fs_root
        OVERRIDE_IN_DOCKER=0 FILESYSTEM_ROOT="$BUILD_DIR/fs" "$py" -c \
            'from localstack.services.kinesis.packages import kinesismock_package as p; p.install()' \
            || die "could not install kinesis-mock (needs node and npm on PATH)"
        touch "$CACHE_DIR/localstack-lib/.kinesis-mock-installed"
    fi
}

# LocalStack's host-mode file tree lives in the build dir; its installed packages
# (var/lib/localstack/lib) live in the cache so a fresh clone does not fetch them again.
prepare_fs_root() {
    local fs="$BUILD_DIR/fs" lib="$CACHE_DIR/localstack-lib"
    mkdir -p "$fs/var/lib/localstack" "$lib"
    if [[ ! -L "$fs/var/lib/localstack/lib" ]]; then
        rm -rf "$fs/var/lib/localstack/lib"
        ln -s "$lib" "$fs/var/lib/localstack/lib"
    fi
}

# The Spark venv's Python (pyspark pinned to Glue's Spark), unless ETL_GLUE_PYTHON says otherwise.
find_glue_python() {
    if [[ -n "${ETL_GLUE_PYTHON:-}" ]]; then
        echo "$ETL_GLUE_PYTHON"
        return
    fi
    local spark
    spark="$(ETL_CACHE_DIR="$CACHE_DIR" "$REPO/tests/venv.sh" "$REPO/tests/spark/requirements.lock" spark)" \
        || die "could not make the Spark venv for Glue job runs (tests/venv.sh)"
    echo "$spark/bin/python"
}

our_pid() {
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && echo "$pid"
}

healthy() { curl -fsS --max-time 2 "$ENDPOINT/_localstack/health" >/dev/null 2>&1; }

port_in_use() {
    # bash's /dev/tcp: a successful connect means something listens there.
    (exec 3<>"/dev/tcp/$HOST/$PORT") 2>/dev/null
}

cmd_up() {
    if pid="$(our_pid)"; then
        if healthy; then
            log "already running (pid $pid) at $ENDPOINT"
            return 0
        fi
        die "pid $pid from $PID_FILE is alive but $ENDPOINT is not healthy; see $LOG_FILE or run: $0 down"
    fi
    if port_in_use; then
        if healthy; then
            die "$HOST:$PORT is taken by a LocalStack not started by this script (stock LocalStack with Docker?). Use it as is (the tests only need the endpoint), or stop it first."
        fi
        die "$HOST:$PORT is already in use by another program; free the port first"
    fi
    cmd_install
    local venv glue_python
    venv="$(venv_dir)"
    glue_python="$(find_glue_python)"
    mkdir -p "$BUILD_DIR/tmp"
    # Glue state is in memory (PERSISTENCE=0): the previous instance's run dirs name runs that
    # no longer exist.
    rm -rf "$BUILD_DIR/glue-runs"
    prepare_fs_root
    rm -f "$PID_FILE"
    log "starting LocalStack 4.14 (host mode) at $ENDPOINT; log: $LOG_FILE"
    local started=$SECONDS
    (
        cd "$BUILD_DIR"
        # Host mode, loopback only. Lambda functions run as host processes via our plugin.
        export GATEWAY_LISTEN="$HOST:$PORT"
        export LAMBDA_RUNTIME_EXECUTOR=host
        # Host-mode file layout under FILESYSTEM_ROOT even when this machine is itself a
        # container (LocalStack would otherwise use /var/lib/localstack).
        export OVERRIDE_IN_DOCKER=0
        export FILESYSTEM_ROOT="$BUILD_DIR/fs"
        # Python temp files (unpacked function code among them) under the build dir; TMP, not
        # TMPDIR, which LocalStack reads as a deprecated setting of its own.
        export TMP="$BUILD_DIR/tmp"
        # Nothing from the internet: no analytics events, no TLS cert download, no DNS server
        # (it would bind port 53 and forward to upstream resolvers).
        export DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 DNS_ADDRESS=0
        export PERSISTENCE=0 DEBUG="${ETL_LOCALSTACK_DEBUG:-0}"
        # Glue job runs: the Python that runs job scripts, and where each run's script,
        # extra-py-files and stdout/stderr go (<dir>/<job>/<run id>/).
        export ETL_GLUE_PYTHON="$glue_python" ETL_GLUE_WORK_DIR="$BUILD_DIR/glue-runs"
        # A LocalStack of our own, whatever AWS settings the caller has.
        unset AWS_PROFILE AWS_ENDPOINT_URL
        # setsid: LocalStack leads its own process group, which holds every bootstrap it
        # starts, so `down` can stop them all by that one id.
        exec setsid "$venv/bin/python" -m localstack.runtime.main </dev/null >"$LOG_FILE" 2>&1
    ) &
    local pid=$!
    echo "$pid" >"$PID_FILE"
    while ! healthy; do
        if ! kill -0 "$pid" 2>/dev/null; then
            tail -n 40 "$LOG_FILE" >&2 || true
            rm -f "$PID_FILE"
            die "LocalStack exited during startup (log above, full log: $LOG_FILE)"
        fi
        if (( SECONDS - started > UP_TIMEOUT )); then
            tail -n 40 "$LOG_FILE" >&2 || true
            cmd_down
            die "LocalStack not healthy after ${UP_TIMEOUT}s (log above, full log: $LOG_FILE)"
        fi
        sleep 0.2
    done
    log "healthy after $(( SECONDS - started ))s (pid $pid)"
}

cmd_down() {
    local pid
    if ! pid="$(our_pid)"; then
        rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping pid $pid"
    # The whole group: LocalStack and the Lambda bootstraps it started.
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local waited=0
    while kill -0 "$pid" 2>/dev/null; do
        if (( waited >= 150 )); then
            log "still running after 15s: SIGKILL"
            kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    # Bootstraps that outlived their parent (they share its process group id).
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$PID_FILE"
    log "stopped"
}

cmd_status() {
    local pid
    if pid="$(our_pid)" && healthy; then
        echo "running (pid $pid) at $ENDPOINT"
    elif healthy; then
        echo "a LocalStack not started by this script answers at $ENDPOINT"
    else
        echo "not running"
        return 1
    fi
}

cmd_env() {
    cat <<EOF
export AWS_ENDPOINT_URL=${ETL_LOCALSTACK_ENDPOINT:-$ENDPOINT}
export AWS_ACCESS_KEY_ID=test
export AWS_SECRET_ACCESS_KEY=test
export AWS_REGION=us-east-1
export AWS_DEFAULT_REGION=us-east-1
EOF
}

cmd_lock() {
    [[ -f "$CONSTRAINTS" ]] || die "constraints not found: $CONSTRAINTS"
    local tmp
    tmp="$(mktemp -d)"
    "$(find_python313)" -m venv "$tmp/venv"
    "$tmp/venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        -c "$CONSTRAINTS" "$LOCALSTACK_SPEC" pytest boto3 setuptools pyarrow
    {
        echo "# LocalStack host-mode venv for tests/localstack (Python 3.13). Generated by"
        echo "# 'tests/localstack/localstack.sh lock' from ../shared/localstack/constraints-4.14.0.txt"
        echo "# plus pytest, boto3, setuptools (builds the plugin) and pyarrow (the end-to-end tests"
        echo "# read Parquet back). Installed with --no-deps."
        # Every installed distribution (pip freeze would hide e.g. argparse, which kclpy-ext needs).
        "$tmp/venv/bin/python" - <<'PY'
from importlib.metadata import distributions
pins = {d.metadata["Name"].lower(): d.version for d in distributions()}
pins.pop("pip", None)
print("\n".join(f"{name}=={version}" for name, version in sorted(pins.items())))
PY
    } >"$LOCK"
    rm -rf "$tmp"
    log "wrote $LOCK"
}

case "${1:-}" in
    install) cmd_install ;;
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    lock) cmd_lock ;;
    python) cmd_install >/dev/null; echo "$(venv_dir)/bin/python" ;;
    *)
        echo "usage: $0 {install|up|down|status|env|lock|python}" >&2
        exit 2
        ;;
esac
