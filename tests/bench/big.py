"""Constant memory on big files: ~5 GB of CSV and of NDJSON, from a local file and from S3.

For each format: `etl generate` writes a dirty customers file of about --gb gigabytes (with
the exact counts the customers spec must report), then
  local  `etl run` on the file;
  s3     the file is uploaded to LocalStack (--endpoint) and the real s3-processor
         `bootstrap` processes it as a workflow Map item, served by a one-shot Lambda
         Runtime API here, so the object is streamed from S3 as in AWS.
Each run's peak RSS comes from wait4 on its process. A run passes when its manifest's counts
equal the generator's and, for s3, its rows per partition equal the local run's; the
memory limit (--limit-mb, 1024) is printed against, never asserted: this is a benchmark.

usage: big.py ETL LAMBDA_DIR WORK [--gb 5] [--formats csv,ndjson] [--endpoint URL | --no-s3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from run import measure  # tests/bench/run.py: wall time and peak RSS via wait4

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "infra" / "pipelines" / "customers.yaml"


def generate(etl: str, fmt: str, gb: float, work: Path) -> tuple[Path, dict]:
    path, expect = work / f"big-{gb:g}gb.{fmt}", work / f"big-{gb:g}gb.{fmt}.expect.json"
    if not (path.is_file() and expect.is_file()):
        sample = work / f"sample.{fmt}"
        subprocess.run([etl, "generate", "--rows", "100000", "--format", fmt, "--output", str(sample)], check=True)
        rows = int(gb * 1e9 / (sample.stat().st_size / 100_000))
        sample.unlink()
        print(f"generating {rows:,} rows of {fmt} -> {path}", flush=True)
        subprocess.run(
            [etl, "generate", "--rows", str(rows), "--format", fmt, "--output", str(path), "--expect", str(expect)],
            check=True,
        )
    return path, json.loads(expect.read_text())


def counts_of(manifest: dict) -> dict:
    c = manifest["counts"]
    return {k: c[k] for k in ("rows_in", "rows_out", "duplicates", "quarantined", "quarantined_by_reason")}


def rows_per_partition(manifest: dict) -> dict[str, int]:
    return {"/".join(f"{k}={v}" for k, v in o["partition"].items()): o["rows"] for o in manifest["outputs"]}


def run_local(etl: str, path: Path, work: Path) -> tuple[float, float, dict]:
    out = work / f"out-{path.suffix[1:]}"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    wall, rss, stdout = measure(
        [etl, "run", "--spec", str(SPEC), "--input", str(path), "--output", str(out), "--json"],
        dict(os.environ),
        work,
    )
    manifest = json.loads(stdout)
    subprocess.run(["rm", "-rf", str(out)], check=True)
    return wall, rss, manifest


class OneShotRuntime(BaseHTTPRequestHandler):
    """A Lambda Runtime API that hands out one event and keeps its response."""

    event: bytes = b"{}"
    served = False
    result: dict | None = None
    done = threading.Event()

    def do_GET(self) -> None:  # noqa: N802
        cls = type(self)
        if cls.served:  # the function polls again after responding: hold it until killed
            cls.done.wait()
            time.sleep(3600)
        cls.served = True
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "big-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 3_600_000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:s3-processor")
        self.send_header("Content-Length", str(len(cls.event)))
        self.end_headers()
        self.wfile.write(cls.event)

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).result = {"path": self.path, "body": json.loads(body or b"null")}
        self.send_response(202)
        self.end_headers()
        type(self).done.set()

    def log_message(self, *args) -> None:
        pass


def run_s3(path: Path, lambda_dir: Path, endpoint: str, work: Path) -> tuple[float, float, dict]:
    import boto3  # the LocalStack venv has it
    from boto3.s3.transfer import TransferConfig

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    raw, processed = "bench-big-raw", "bench-big-processed"
    for b in (raw, processed):
        try:
            s3.create_bucket(Bucket=b)
        except s3.exceptions.BucketAlreadyOwnedByYou:
            pass
    key = f"raw-data/customers/{path.name}"
    print(f"uploading {path.name} to {endpoint}", flush=True)
    s3.upload_file(str(path), raw, key, Config=TransferConfig(multipart_chunksize=64 << 20, max_concurrency=4))

    OneShotRuntime.event = json.dumps({"bucket": raw, "key": key}).encode()
    OneShotRuntime.served, OneShotRuntime.result = False, None
    OneShotRuntime.done = threading.Event()
    server = ThreadingHTTPServer(("127.0.0.1", 0), OneShotRuntime)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    # The deployable zip, unpacked as Lambda would.
    tmp = work / "lambda-tmp"
    subprocess.run(["rm", "-rf", str(tmp)], check=True)
    tmp.mkdir()
    subprocess.run(["unzip", "-q", str(lambda_dir / "s3-processor" / "bootstrap.zip"), "-d", str(tmp)], check=True)
    bootstrap = tmp / "bootstrap"
    env = {
        "PATH": "/usr/bin:/bin", "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{server.server_address[1]}",
        "AWS_LAMBDA_FUNCTION_NAME": "s3-processor", "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1769", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_ENDPOINT_URL": endpoint,
        "PROCESSED_BUCKET": processed, "WORK_DIR": str(tmp), "RUST_LOG": "warn",
    }
    start = time.monotonic()
    proc = subprocess.Popen([str(bootstrap)], env=env)
    OneShotRuntime.done.wait()
    wall = time.monotonic() - start
    proc.kill()
    _, _, usage = os.wait4(proc.pid, 0)
    server.shutdown()
    result = OneShotRuntime.result or {}
    if not result.get("path", "").endswith("/response"):
        raise SystemExit(f"s3-processor failed on s3://{raw}/{key}: {result.get('body')}")
    manifest_key = result["body"]["objects"][0]["manifestKey"]
    manifest = json.loads(s3.get_object(Bucket=processed, Key=manifest_key)["Body"].read())
    s3.delete_object(Bucket=raw, Key=key)
    return wall, usage.ru_maxrss / 1024, manifest


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("etl")
    p.add_argument("lambda_dir", type=Path)
    p.add_argument("work", type=Path)
    p.add_argument("--gb", type=float, default=5.0)
    p.add_argument("--formats", default="csv,ndjson")
    p.add_argument("--endpoint", default=os.environ.get("ETL_LOCALSTACK_ENDPOINT", "http://127.0.0.1:4566"))
    p.add_argument("--no-s3", action="store_true")
    p.add_argument("--limit-mb", type=float, default=1024)
    args = p.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)

    rows = []
    ok = True
    for fmt in args.formats.split(","):
        path, expect = generate(args.etl, fmt, args.gb, args.work)
        size_mb = path.stat().st_size / 1e6
        wall, rss, local = run_local(args.etl, path, args.work)
        match = counts_of(local) == expect
        ok &= match
        rows.append((fmt, "local file", size_mb, wall, rss, local["counts"]["rows_out"], match))
        print(rows[-1], flush=True)
        if not args.no_s3:
            wall, rss, remote = run_s3(path, args.lambda_dir, args.endpoint, args.work)
            match = counts_of(remote) == expect and rows_per_partition(remote) == rows_per_partition(local)
            ok &= match
            rows.append((fmt, "S3 (LocalStack)", size_mb, wall, rss, remote["counts"]["rows_out"], match))
            print(rows[-1], flush=True)

    print(f"\n| input | from | size MB | wall s | MB/s | peak RSS MB | under {args.limit_mb:.0f} MB | rows out | counts as expected |")
    print("|---|---|---|---|---|---|---|---|---|")
    for fmt, where, size, wall, rss, out, match in rows:
        print(f"| {fmt} | {where} | {size:.0f} | {wall:.1f} | {size / wall:.0f} | {rss:.0f} | "
              f"{'yes' if rss < args.limit_mb else 'no'} | {out} | {'yes' if match else 'NO'} |")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
