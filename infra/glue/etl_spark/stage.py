"""One input through the plan into a work directory, laid out as the engine's run leaves
its work dir for a publisher: `<work>/data/<partition dirs>/<id>.parquet` and
`<work>/quarantine.parquet`, with the run manifest (shared/etl-core/src/manifest.rs)
whose output paths are relative to `<work>/data`. `local` moves the files into `etl run`'s
layout; `job` publishes them to S3 as s3-processor does. The work dir is local when Spark
runs in this process, an S3 prefix on a Glue cluster.
"""

from __future__ import annotations

import datetime as dt
import time
from urllib.parse import unquote

from . import partitions, reader, split, transform


def rfc3339_ms(t: dt.datetime) -> str:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _write_parquet(spark, df, work, target: str, plan: dict | None, compression: str,
                   file_name: str, order_by: str | None = None) -> list[dict]:
    """One file named `file_name` per partition directory of `plan`'s output (None: no
    partitions) under `target`, the directory named as the engine names it (partitions.py;
    Spark names its own part files): written to a scratch dir, then moved. Returns the
    engine's OutputFile records (path relative to `target`, partition values unescaped,
    rows, bytes). `order_by` orders the rows within each file."""
    tmp = "scratch"
    work.remove(tmp)
    dirs = {}
    if plan and plan["output"]["partition_by"]:
        df, dirs = partitions.tag(df, plan)
    # One file per directory: each directory's rows go to one task (a shuffle, not
    # coalesce(1), which would run everything before the write in a single task).
    df = df.repartition(partitions.TAG) if dirs else df.repartition(1)
    if order_by:
        # A shuffle keeps no earlier order, so the order is set after it.
        df = df.sortWithinPartitions(order_by)
    writer = df.write.mode("overwrite").option("compression", compression)
    if dirs:
        writer = writer.partitionBy(partitions.TAG)
    writer.parquet(work.spark_path(tmp))
    written = []
    for rel, size in work.files(tmp):
        if not rel.endswith(".parquet"):
            continue
        rel_dir = rel.rsplit("/", 1)[0] if "/" in rel else ""
        if dirs:
            rel_dir = dirs[rel_dir.split("=", 1)[1]]
        dest_rel = f"{rel_dir}/{file_name}" if rel_dir else file_name
        work.move(f"{tmp}/{rel}", f"{target}/{dest_rel}")
        written.append((dest_rel, rel_dir, size))
    work.remove(tmp)
    rows = _row_counts(spark, work, target, [d for d, _, _ in written])
    outputs = []
    for dest_rel, rel_dir, size in written:
        partition = {}
        for part in rel_dir.split("/") if rel_dir else []:
            key, _, value = part.partition("=")
            partition[unquote(key)] = unquote(value)
        outputs.append({"path": dest_rel, "partition": partition, "rows": rows[dest_rel], "bytes": size})
    return sorted(outputs, key=lambda o: o["path"])


def _row_counts(spark, work, target: str, rels: list[str]) -> dict[str, int]:
    """Rows per written file, from the Parquet footers: one small Spark job."""
    if not rels:
        return {}
    from pyspark.sql import functions as F

    paths = [work.spark_path(f"{target}/{r}") for r in rels]
    # Files named one by one: no partition discovery (the counts are all that is read).
    counted = spark.read.option("recursiveFileLookup", "true").parquet(*paths) \
        .groupBy(F.input_file_name().alias("f")).count().collect()
    # input_file_name is a URI (percent-encoded); the on-disk names end it.
    names = [(unquote(r["f"]), r["count"]) for r in counted]
    out = {}
    for rel in rels:
        found = [n for f, n in names if f.endswith(f"/{target}/{rel}")]
        out[rel] = found[0] if len(found) == 1 else spark.read.parquet(
            work.spark_path(f"{target}/{rel}")).count()
    return out


def run(spark, plan: dict, src, ident: str, work, *, etag: str | None = None,
        now: dt.datetime | None = None, split_bytes: int | None = None) -> dict:
    """Runs one input (a `source` object) into `work` (LocalWork or S3Work): data under
    `data/`, the quarantine file `quarantine.parquet`; returns the manifest, whose output
    and quarantine paths are relative to those. Raises reader.InputError or
    transform.RecordError for bad input. An input larger than `split_bytes` (default
    split.DEFAULT_SPLIT_BYTES) is read by Spark tasks in byte ranges."""
    started = dt.datetime.now(dt.timezone.utc)
    clock = time.monotonic()
    now = now or started
    now_us = int(now.timestamp() * 1_000_000)
    source = split.read(spark, src, plan, split_bytes)
    try:
        return _run(spark, plan, source, src.name, ident, etag, work, now_us, started, clock)
    except (reader.InputError, transform.RecordError):
        raise
    except Exception:
        # Steps run lazily, so a value a strict expression refuses surfaces in a later
        # action; step by step, the run names the step and the first line that refused.
        transform.run(spark, plan, source, src.name, now_us, checkpoint=True)
        raise


def _run(spark, plan, source, name, ident, etag, work, now_us, started, clock) -> dict:
    result = transform.run(spark, plan, source, name, now_us, checkpoint=False)
    out = plan["output"]
    compression = "none" if out["compression"] == "uncompressed" else out["compression"]
    file_name = f"{ident}.parquet"
    publish = result.quality["passed"]
    outputs = []
    if publish and result.rows_out > 0:
        outputs = _write_parquet(spark, result.data, work, "data", plan, compression,
                                 file_name)
    quarantine = None
    quarantined = sum(result.by_code.values())
    if quarantined:
        [q] = _write_parquet(spark, result.quarantine, work, "q", None, compression, file_name,
                             order_by=transform.LINE)
        work.move(f"q/{file_name}", "quarantine.parquet")
        quarantine = {"path": "quarantine.parquet", "rows": quarantined, "bytes": q["bytes"]}
    finished = dt.datetime.now(dt.timezone.utc)
    parts = out["partition_by"]
    manifest = {
        "manifest_version": 1,
        "engine": "spark",
        "dataset": plan["dataset"],
        "source": {"name": name, "id": ident, "etag": etag, "format": source.format,
                   "bytes": source.bytes},
        "status": "succeeded" if publish else "quality_failed",
        "started_at": rfc3339_ms(started),
        "finished_at": rfc3339_ms(finished),
        "duration_ms": int((time.monotonic() - clock) * 1000),
        "counts": {"rows_in": result.rows_in, "rows_out": result.rows_out,
                   "duplicates": result.duplicates, "quarantined": quarantined,
                   "quarantined_by_reason": dict(sorted(result.by_code.items()))},
        "outputs": outputs,
        "output_bytes": sum(o["bytes"] for o in outputs),
        "quarantine": quarantine,
        # The engine lists data columns, then the partition columns in partition order.
        "schema": [_schema_column(c, False) for c in plan["columns"] if c["name"] not in parts]
        + [_schema_column(c, True) for p in parts for c in plan["columns"] if c["name"] == p],
        "input_columns": {"found": source.found, "dropped": source.dropped},
        "quality": result.quality,
    }
    c = manifest["counts"]
    if c["rows_in"] != c["rows_out"] + c["duplicates"] + c["quarantined"]:
        raise RuntimeError(f"row accounting does not balance: {c}")
    return manifest


def _schema_column(c: dict, partition: bool) -> dict:
    return {"name": c["name"], "dtype": c["dtype"], "glue_type": c["glue_type"],
            "partition": partition}
