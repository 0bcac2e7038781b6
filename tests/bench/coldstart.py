"""Cold start of each Lambda function: process start to its first Runtime API poll.

Serves a minimal Lambda Runtime API on 127.0.0.1 (a fresh port per run), spawns a function
binary with the environment Lambda gives a provided.al2023 function plus the variables its
Config::from_env requires (placeholder values), and times from just before the spawn to the
moment `GET /2018-06-01/runtime/invocation/next` has arrived. The process is then killed:
nothing after the first poll is measured. Spawn cost (vfork + exec) is included, as on Lambda;
the `(spawn /bin/true)` row is the harness floor. The SDK's TLS setup reads the host's CA
store at init (Debian: a bundle plus ~290 files in /etc/ssl/certs); AL2023 has one bundle,
which `--env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt` approximates. The first `--warmup` runs of each binary
(page cache, dynamic loader caches) are not counted. Exits 1 if a binary never polls (its
output is shown), never because a figure is over the target: figures are for reading.

usage: coldstart.py [--runs N] [--warmup N] [--cpus 0|all] [--memory MB] [--env K=V] DIR [DIR ...]
  DIR is a cargo profile dir (DIR/<name>) or a cargo-lambda dir (DIR/<name>/bootstrap[.zip]).
"""

import argparse
import math
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

LIMIT_MS = 20.0
REQUEST_LINE = b"GET /2018-06-01/runtime/invocation/next "

# What each function's Config::from_env requires, plus the optional settings a deployment
# sets, so their parsing is part of the measured init (functions/*/src/lib.rs).
FUNCTIONS = {
    "s3-processor": {
        "PROCESSED_BUCKET": "etl-processed-000000000000",
        "QUARANTINE_BUCKET": "etl-quarantine-000000000000",
        "GLUE_DATABASE": "etl",
        "ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:000000000000:etl-alerts",
    },
    "api-ingester": {"RAW_BUCKET": "etl-raw-000000000000", "API_PARAM_PREFIX": "/etl/api/"},
    "source-data-checker": {
        "RAW_BUCKET": "etl-raw-000000000000",
        "MANIFEST_BUCKET": "etl-processed-000000000000",
    },
    "job-status-checker": {},
    "kinesis-consumer": {
        "ARCHIVE_BUCKET": "etl-archive-000000000000",
        "ORDER_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:000000000000:stateMachine:x",
    },
}


EXTRA_ENV: dict[str, str] = {}  # --env: e.g. SSL_CERT_FILE to mimic Lambda's one CA bundle


def lambda_env(name: str, port: int, memory: int) -> dict[str, str]:
    """A clean environment like Lambda's: nothing inherited from this shell (no
    AWS_ENDPOINT_URL, no HOME profile files), static dummy credentials so the SDK never
    looks for IMDS."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin/:/bin:/opt/bin",
        "LANG": "en_US.UTF-8",
        "TZ": ":UTC",
        "LAMBDA_TASK_ROOT": "/var/task",
        "LAMBDA_RUNTIME_DIR": "/var/runtime",
        "_HANDLER": "bootstrap",
        "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{port}",
        "AWS_LAMBDA_FUNCTION_NAME": name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(memory),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": "2024/01/01/[$LATEST]00000000000000000000000000000000",
        "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
        "AWS_LAMBDA_LOG_FORMAT": "JSON",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "AWS_SESSION_TOKEN": "dummy-session-token",
    }
    env.update(FUNCTIONS.get(name, {}))
    env.update(EXTRA_ENV)
    return env


def spawn(cmd: list[str], cpus: set[int] | None, **kw) -> tuple[int, subprocess.Popen]:
    """Start time (ns) and the process, pinned to `cpus` with every thread it starts. This
    process pins itself around the spawn and the child inherits the mask: a preexec_fn would
    force a full fork of the interpreter (~1.5 ms here) instead of vfork."""
    old = os.sched_getaffinity(0)
    if cpus:
        os.sched_setaffinity(0, cpus)
    try:
        start = time.perf_counter_ns()
        return start, subprocess.Popen(cmd, **kw)
    finally:
        os.sched_setaffinity(0, old)


def one_run(cmd: list[str], name: str, memory: int, cpus: set[int] | None,
            timeout: float) -> tuple[float | None, str]:
    """Milliseconds from spawn to the first poll, or None and the process's output."""
    with socket.socket() as srv, tempfile.TemporaryFile() as out:
        srv.bind(("127.0.0.1", 0))
        srv.listen(8)
        srv.setblocking(False)
        sel = selectors.DefaultSelector()
        sel.register(srv, selectors.EVENT_READ)
        env = lambda_env(name, srv.getsockname()[1], memory)
        start, proc = spawn(cmd, cpus, env=env, stdin=subprocess.DEVNULL, stdout=out,
                            stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if not sel.select(timeout=0.005):
                    if proc.poll() is not None:  # exited before polling (config error, panic)
                        break
                    continue
                conn, _ = srv.accept()
                with conn:
                    conn.settimeout(timeout)
                    head = b""
                    while b"\r\n\r\n" not in head:  # the whole request head has arrived
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        head += chunk
                    arrived = time.perf_counter_ns()
                    if head.startswith(REQUEST_LINE):
                        return (arrived - start) / 1e6, ""
                    return None, f"first request was not a poll: {head[:200]!r}"
            reason = "exited" if proc.poll() is not None else f"no poll within {timeout:.0f} s"
        finally:
            proc.kill()
            proc.wait()
            sel.close()
        out.seek(0)
        return None, f"{reason} (exit {proc.returncode}):\n{out.read().decode(errors='replace')[-3000:]}"


def resolve(directory: Path, name: str, scratch: Path) -> Path | None:
    """The binary for `name` in a profile dir or a cargo-lambda dir; zips are unpacked as
    Lambda does."""
    for candidate in (directory / name / "bootstrap.zip", directory / name / "bootstrap",
                      directory / name):
        if candidate.is_file() and candidate.suffix == ".zip":
            dest = scratch / directory.name / name
            with zipfile.ZipFile(candidate) as z:
                z.extract("bootstrap", dest)
            (dest / "bootstrap").chmod(0o755)
            return dest / "bootstrap"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dirs", nargs="+", type=Path)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--memory", type=int, default=1024, help="AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
    ap.add_argument("--cpus", default="0",
                    help="CPU list to pin each function to (default 0: one core, as a Lambda "
                         "of <= 1,769 MB has one vCPU), or 'all'")
    ap.add_argument("--env", action="append", default=[], metavar="K=V",
                    help="extra variable for every function (repeatable)")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a poll")
    args = ap.parse_args()
    EXTRA_ENV.update(kv.split("=", 1) for kv in args.env)
    cpus = None if args.cpus == "all" else {int(c) for c in args.cpus.split(",")}

    rows, failed = [], False
    with tempfile.TemporaryDirectory() as scratch:
        # The harness floor: spawning and reaping a process that does nothing, pinned alike.
        floor = []
        for _ in range(args.runs):
            t, proc = spawn(["/bin/true"], cpus)
            proc.wait()
            floor.append((time.perf_counter_ns() - t) / 1e6)
        rows.append(("-", "(spawn /bin/true)", floor))
        for directory in args.dirs:
            for name in FUNCTIONS:
                binary = resolve(directory, name, Path(scratch))
                if binary is None:
                    print(f"coldstart: no binary for {name} in {directory}", file=sys.stderr)
                    failed = True
                    continue
                times = []
                for i in range(args.warmup + args.runs):
                    ms, why = one_run([str(binary)], name, args.memory, cpus, args.timeout)
                    if ms is None:
                        print(f"coldstart: {binary} never polled: {why}", file=sys.stderr)
                        failed = True
                        break
                    if i >= args.warmup:
                        times.append(ms)
                if times:
                    rows.append((str(directory), name, times))
                    print(f"  {name:<20} {statistics.median(times):6.1f} ms  {directory}", file=sys.stderr)

    print(f"\nProcess start to first poll, {args.runs} runs after {args.warmup} warm-up, "
          f"cpus={args.cpus}, {args.memory} MB{''.join(', ' + kv for kv in args.env)}; target <= {LIMIT_MS:.0f} ms\n")
    print("| binaries | function | median ms | p95 ms | max ms | p95 <= 20 ms |")
    print("|---|---|---|---|---|---|")
    for directory, name, times in rows:
        ok = "" if directory == "-" else ("yes" if pct(times, 95) <= LIMIT_MS else "**no**")
        print(f"| {directory} | {name} | {statistics.median(times):.1f} | {pct(times, 95):.1f} | "
              f"{max(times):.1f} | {ok} |")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
