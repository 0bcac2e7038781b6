"""Measure host-mode LocalStack: start-to-healthy time, cold and warm invoke latency.

Run with the LocalStack venv's python (tests/localstack/localstack.sh python) after building
the probe (tests/localstack/tools.sh build-lambdas):

    python tests/localstack/measure.py [--zip PATH] [--rounds 3] [--warm 20] [--restart]

Start time is measured when this script starts LocalStack: when none runs, or with --restart
(which stops ours first). Each round creates a new probe function, times its first invoke
(cold: the bootstrap process is started) and then --warm more invokes (warm: same process).
Latencies are client-side round trips of lambda.Invoke (boto3, RequestResponse).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import boto3

HERE = Path(__file__).resolve().parent
SCRIPT = HERE / "localstack.sh"
ENDPOINT = os.environ.get("ETL_LOCALSTACK_ENDPOINT", "http://127.0.0.1:4566")


def healthy() -> bool:
    try:
        with urllib.request.urlopen(f"{ENDPOINT}/_localstack/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def start_localstack() -> float:
    started = time.perf_counter()
    subprocess.run(["bash", str(SCRIPT), "up"], check=True)
    while not healthy():  # `up` returns once healthy; this only guards the measurement
        time.sleep(0.05)
    return time.perf_counter() - started


def timed_invoke(lam, name: str) -> tuple[float, dict]:
    started = time.perf_counter()
    response = lam.invoke(FunctionName=name, Payload=b"{}")
    elapsed = time.perf_counter() - started
    out = json.loads(response["Payload"].read())
    if "FunctionError" in response:
        raise RuntimeError(f"invoke failed: {out}")
    return elapsed, out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_zip = Path(os.environ.get("CARGO_TARGET_DIR", HERE.parents[1] / "target"))
    parser.add_argument("--zip", default=str(default_zip / "lambda/probe-lambda/bootstrap.zip"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warm", type=int, default=20)
    parser.add_argument("--restart", action="store_true", help="restart our LocalStack first")
    args = parser.parse_args()

    started_here = False
    if args.restart:
        subprocess.run(["bash", str(SCRIPT), "down"], check=True)
    if healthy():
        print("LocalStack already running: start-to-healthy not measured (use --restart)")
    else:
        print(f"LocalStack start-to-healthy: {start_localstack():.2f} s")
        started_here = True

    lam = boto3.client(
        "lambda",
        endpoint_url=ENDPOINT,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    code = Path(args.zip).read_bytes()
    try:
        for round_no in range(1, args.rounds + 1):
            name = f"measure-{uuid.uuid4().hex[:8]}"
            lam.create_function(
                FunctionName=name,
                Runtime="provided.al2023",
                Handler="bootstrap",
                Role="arn:aws:iam::000000000000:role/measure",
                Code={"ZipFile": code},
                Timeout=30,
            )
            lam.get_waiter("function_active_v2").wait(
                FunctionName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
            )
            cold, first = timed_invoke(lam, name)
            warm = []
            for _ in range(args.warm):
                elapsed, out = timed_invoke(lam, name)
                if out["pid"] != first["pid"]:
                    raise RuntimeError("a warm invoke ran in a new process")
                warm.append(elapsed)
            warm.sort()
            p95 = warm[max(0, round(0.95 * len(warm)) - 1)]
            print(
                f"round {round_no}: cold invoke {cold * 1000:.1f} ms; "
                f"warm invoke median {statistics.median(warm) * 1000:.1f} ms, "
                f"p95 {p95 * 1000:.1f} ms, min {warm[0] * 1000:.1f} ms (n={len(warm)})"
            )
            lam.delete_function(FunctionName=name)
    finally:
        if started_here:
            subprocess.run(["bash", str(SCRIPT), "down"], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
