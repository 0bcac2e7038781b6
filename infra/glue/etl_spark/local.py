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

from . import partitions, reader, split, stage, transform, workdir
from .source import LocalFile

FAILURE, BAD_SPEC, BAD_INPUT, QUALITY_FAILED = 1, 3, 4, 5


def source_id(text: str) -> str:
    """pipeline::source_id: a file-name-safe id of a source name."""
    out = re.sub(r"[^A-Za-z0-9._-]", "_", text).strip("_")
    if len(out.encode()) > 200:
        raise reader.InputError(f"{text}: source ids over 200 bytes are not supported here")
    return out


def run(spark, plan: dict, input_path, output: str, now: dt.datetime | None = None,
        split_bytes: int | None = None) -> dict:
    """Runs one input (a local path or a `source` object); returns the manifest (also
    written). Raises reader.InputError or transform.RecordError for bad input. An input
    larger than `split_bytes` (default split.DEFAULT_SPLIT_BYTES) is read by Spark tasks."""
    src = LocalFile(input_path) if isinstance(input_path, str) else input_path
    ident = source_id(os.path.basename(src.name))
    dataset = plan["dataset"]
    data_dir = os.path.join(output, dataset)
    q_path = os.path.join(output, "_quarantine", dataset, f"{ident}.parquet")
    with tempfile.TemporaryDirectory(prefix="etl-spark-") as tmp:
        work = workdir.LocalWork(tmp)
        manifest = stage.run(spark, plan, src, ident, work, now=now, split_bytes=split_bytes)
        # A rerun replaces this source's files.
        for root, _, names in os.walk(data_dir):
            if f"{ident}.parquet" in names:
                os.remove(os.path.join(root, f"{ident}.parquet"))
        if os.path.exists(q_path):
            os.remove(q_path)
        for o in manifest["outputs"]:
            dest = os.path.join(data_dir, *o["path"].split("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.move(work.local_path(f"data/{o['path']}"), dest)
            o["path"] = dest
        if manifest["quarantine"]:
            os.makedirs(os.path.dirname(q_path), exist_ok=True)
            shutil.move(work.local_path(manifest["quarantine"]["path"]), q_path)
            manifest["quarantine"]["path"] = q_path
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
    p.add_argument("--split-bytes", type=int, default=None,
                   help="read inputs larger than this in byte ranges, one Spark task each "
                        f"(default {split.DEFAULT_SPLIT_BYTES})")
    args = p.parse_args(argv)
    # Spark's Python workers run this interpreter too, with its packages (zstandard).
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    try:
        with open(args.plan) as f:
            plan = json.load(f)
        spark = transform.session(plan, args.master)
    except (OSError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return BAD_SPEC
    spark.sparkContext.setLogLevel("ERROR")
    try:
        manifest = run(spark, plan, args.input, args.output, split_bytes=args.split_bytes)
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
