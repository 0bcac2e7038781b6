"""Runs a plan on a local file and writes the layout `etl run` writes:
`<output>/<dataset>/<partition dirs>/<source id>.parquet`, `<output>/_quarantine/<dataset>/
<source id>.parquet` and `<output>/_manifests/<dataset>/<source id>.json`.

    python -m etl_spark.local --plan plan.json --input in.csv --output out/

Exit codes as `etl run`: 0 ok, 3 bad plan, 4 unreadable input or a refused value, 5 a
quality rule with `action: fail` failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import sys
import tempfile
import time

from . import partitions, reader, transform
from .source import LocalFile

FAILURE, BAD_SPEC, BAD_INPUT, QUALITY_FAILED = 1, 3, 4, 5


def source_id(text: str) -> str:
    """pipeline::source_id: a file-name-safe id of a source name."""
    out = re.sub(r"[^A-Za-z0-9._-]", "_", text).strip("_")
    if len(out.encode()) > 200:
        raise reader.InputError(f"{text}: source ids over 200 bytes are not supported here")
    return out


def _files(root: str):
    for d, _, names in os.walk(root):
        for n in names:
            yield os.path.join(d, n)


def _write_parquet(df, target_dir: str, plan: dict | None, compression: str,
                   file_name: str, scratch: str) -> list[dict]:
    """One file named `file_name` per partition directory of `plan`'s output (None: no
    partitions), named as the engine names it (partitions.py; Spark names its own part
    files): written to scratch, then moved into place."""
    tmp = os.path.join(scratch, "w")
    dirs = {}
    if plan and plan["output"]["partition_by"]:
        df, dirs = partitions.tag(df, plan)
    writer = df.coalesce(1).write.mode("overwrite").option("compression", compression)
    if dirs:
        writer = writer.partitionBy(partitions.TAG)
    writer.parquet(tmp)
    outputs = []
    for path in sorted(_files(tmp)):
        if not path.endswith(".parquet"):
            continue
        rel_dir = os.path.relpath(os.path.dirname(path), tmp)
        if dirs:
            rel_dir = dirs[rel_dir.split("=", 1)[1]]
        dest_dir = target_dir if rel_dir == "." else os.path.join(target_dir, rel_dir)
        os.makedirs(dest_dir, exist_ok=True)
        dest = os.path.join(dest_dir, file_name)
        shutil.move(path, dest)
        outputs.append({"path": dest, "bytes": os.path.getsize(dest)})
    shutil.rmtree(tmp, ignore_errors=True)
    return outputs


def run(spark, plan: dict, input_path, output: str, now: dt.datetime | None = None) -> dict:
    """Runs one input (a local path or a `source` object); returns the manifest (also
    written). Raises reader.InputError or transform.RecordError for bad input."""
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.monotonic()
    now = now or started
    now_us = int(now.timestamp() * 1_000_000)
    src = LocalFile(input_path) if isinstance(input_path, str) else input_path
    input_path = src.name
    source = reader.read(src.read_all(), input_path, plan)
    try:
        return _run(spark, plan, source, input_path, output, now_us, started, clock)
    except (reader.InputError, transform.RecordError):
        raise
    except Exception:
        # Steps run lazily, so a value a strict expression refuses surfaces in a later
        # action; step by step, the run names the step and the first line that refused.
        transform.run(spark, plan, source, input_path, now_us, checkpoint=True)
        raise


def _run(spark, plan, source, input_path, output, now_us, started, clock) -> dict:
    ident = source_id(os.path.basename(input_path))
    result = transform.run(spark, plan, source, input_path, now_us, checkpoint=False)
    dataset = plan["dataset"]
    out = plan["output"]
    compression = "none" if out["compression"] == "uncompressed" else out["compression"]
    data_dir = os.path.join(output, dataset)
    file_name = f"{ident}.parquet"
    # A rerun replaces this source's files.
    if os.path.isdir(data_dir):
        for path in _files(data_dir):
            if os.path.basename(path) == file_name:
                os.remove(path)
    publish = result.quality["passed"]
    q_path = os.path.join(output, "_quarantine", dataset, file_name)
    if os.path.exists(q_path):
        os.remove(q_path)
    with tempfile.TemporaryDirectory(prefix="etl-spark-") as scratch:
        outputs = []
        if publish and result.rows_out > 0:
            outputs = _write_parquet(result.data, data_dir, plan, compression,
                                     file_name, scratch)
        quarantine = None
        rows = sum(result.by_code.values())
        if rows:
            q = _write_parquet(result.quarantine, os.path.dirname(q_path), None, compression,
                               file_name, scratch)
            quarantine = {"path": q_path, "rows": rows, "bytes": q[0]["bytes"]}
    finished = dt.datetime.now(dt.timezone.utc)
    quarantined = sum(result.by_code.values())
    manifest = {
        "manifest_version": 1,
        "engine": "spark",
        "dataset": dataset,
        "source": {"name": input_path, "id": ident, "etag": None, "format": source.format,
                   "bytes": source.bytes},
        "status": "succeeded" if publish else "quality_failed",
        "started_at": started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "finished_at": finished.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "duration_ms": int((time.monotonic() - clock) * 1000),
        "counts": {"rows_in": result.rows_in, "rows_out": result.rows_out,
                   "duplicates": result.duplicates, "quarantined": quarantined,
                   "quarantined_by_reason": dict(sorted(result.by_code.items()))},
        "outputs": outputs,
        "output_bytes": sum(o["bytes"] for o in outputs),
        "quarantine": quarantine,
        "schema": [{"name": c["name"], "type": c["type"],
                    "partition": c["name"] in out["partition_by"]} for c in plan["columns"]],
        "input_columns": {"found": source.found, "dropped": source.dropped},
        "quality": result.quality,
    }
    c = manifest["counts"]
    if c["rows_in"] != c["rows_out"] + c["duplicates"] + c["quarantined"]:
        raise RuntimeError(f"row accounting does not balance: {c}")
    path = os.path.join(output, "_manifests", dataset, f"{ident}.json")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="etl_spark.local", description=__doc__.split("\n")[0])
    p.add_argument("--plan", required=True, help="JSON from `etl plan --target spark`")
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--master", default="local[*]")
    p.add_argument("--json", action="store_true", help="print the manifest")
    args = p.parse_args(argv)
    try:
        with open(args.plan) as f:
            plan = json.load(f)
        spark = transform.session(plan, args.master)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return BAD_SPEC
    spark.sparkContext.setLogLevel("ERROR")
    try:
        manifest = run(spark, plan, args.input, args.output)
    except (reader.InputError, transform.RecordError) as e:
        print(f"error: {e}", file=sys.stderr)
        return BAD_INPUT
    except partitions.TooManyPartitions as e:
        print(f"error: {plan['spec_file']}: {e}", file=sys.stderr)
        return BAD_SPEC
    finally:
        spark.stop()
    if args.json:
        print(json.dumps(manifest, indent=2))
    else:
        c = manifest["counts"]
        print(f"{args.input}: {c['rows_in']} in, {c['rows_out']} out, {c['duplicates']} "
              f"duplicates, {c['quarantined']} quarantined; quality score "
              f"{manifest['quality']['score']:.2f}")
    return 0 if manifest["status"] == "succeeded" else QUALITY_FAILED


if __name__ == "__main__":
    sys.exit(main())
