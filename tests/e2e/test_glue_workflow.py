"""The workflow's Glue engine, deployed: the job run is given exactly the listed files
(inline as --items, or the S3 list as --items_location) and a worker count sized from their
bytes, and a file over the stack's GlueRouteThresholdBytes uploaded to the raw bucket starts
a Glue workflow execution for exactly that file, which the Spark job then processes into the
same table (the session stack lowers the threshold: conftest.py, ROUTE_BYTES)."""

from __future__ import annotations

import json
import math
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from conftest import ROUTE_BYTES
from helpers import wait_for
from test_pipeline import SAMPLE, states_entered
from test_workflow_listing import manifests_by_source, new_raw_bucket, run, set_checker_env

# The template's GlueMinWorkers / GlueMaxWorkers defaults.
MIN_WORKERS, MAX_WORKERS = 2, 20


def workers(total_bytes: int, per_worker: int) -> int:
    return min(max(math.ceil(total_bytes / per_worker), MIN_WORKERS), MAX_WORKERS)


def start_job_run_parameters(client, execution_arn: str) -> dict[str, Any]:
    """The parameters of the execution's one glue:startJobRun task, as it was scheduled."""
    events = client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    scheduled = [
        json.loads(e["taskScheduledEventDetails"]["parameters"])
        for e in events
        if e["type"] == "TaskScheduled"
        and e["taskScheduledEventDetails"]["resourceType"] == "glue"
        and e["taskScheduledEventDetails"]["resource"].startswith("startJobRun")
    ]
    assert len(scheduled) == 1, scheduled
    return scheduled[0]


def listed(client, bucket: str, prefix: str) -> dict[str, tuple[str, int]]:
    """key -> (etag, size) as S3 lists them."""
    out = {}
    for page in client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        out.update({o["Key"]: (o["ETag"].strip('"'), o["Size"]) for o in page.get("Contents", [])})
    return out


def items_by_key(items: list[dict[str, Any]], bucket: str) -> dict[str, tuple[str, int]]:
    """The items' key -> (etag, size), failing on another bucket or a key listed twice."""
    assert all(i["bucket"] == bucket for i in items), items
    keys = [i["key"] for i in items]
    assert len(keys) == len(set(keys)), "a file listed twice"
    return {i["key"]: (i["etag"], i["size"]) for i in items}


def test_glue_engine_gets_exactly_the_listed_files_inline_and_workers_from_their_bytes(stack, client):
    s3 = client("s3")
    bucket = new_raw_bucket(client, stack, "glue-inline")
    prefix = "raw-data/customers/glue-inline/"
    lines = SAMPLE.read_bytes().splitlines(keepends=True)
    # Sizes differ, so a wrong size or a swapped item shows.
    for n in (5, 12, len(lines)):
        s3.put_object(Bucket=bucket, Key=f"{prefix}f{n}.csv", Body=b"".join(lines[:n]))
    # Not a listed suffix: never given to the job.
    s3.put_object(Bucket=bucket, Key=f"{prefix}notes.txt", Body=b"x")
    want = {k: v for k, v in listed(client, bucket, prefix).items() if k.endswith(".csv")}
    per_worker = 1000
    checker = stack["SourceDataCheckerFunctionName"]
    old = set_checker_env(client, checker, {"GLUE_BYTES_PER_WORKER": str(per_worker)})
    try:
        done = run(client, stack, {"engine": "glue", "bucket": bucket, "prefix": prefix}, timeout=300)
    finally:
        set_checker_env(client, checker, {"GLUE_BYTES_PER_WORKER": old.get("GLUE_BYTES_PER_WORKER")})
    assert done["status"] == "SUCCEEDED", done

    params = start_job_run_parameters(client, done["executionArn"])
    assert params["JobName"] == stack["GlueJobName"]
    assert set(params["Arguments"]) == {"--items"}, params
    assert items_by_key(json.loads(params["Arguments"]["--items"]), bucket) == want
    total = sum(size for _, size in want.values())
    expected = workers(total, per_worker)
    assert MIN_WORKERS < expected < MAX_WORKERS, total
    assert params["NumberOfWorkers"] == expected, (total, params)
    source = json.loads(done["output"])["source"]
    assert (source["totalBytes"], source["glueWorkers"]) == (total, expected)


def test_glue_engine_reads_a_listing_past_the_inline_limit_from_s3_each_file_once(stack, client):
    s3 = client("s3")
    bucket = new_raw_bucket(client, stack, "glue-listed")
    prefix = "raw-data/customers/glue-listed/"
    header = SAMPLE.read_text().splitlines()[0]
    files = {
        f"{prefix}f{i:04d}.csv": f"{header}\n{200000 + i},Name {i},n{i}@example.com,US,{i % 900}.00,1.00,d,2024-01-15\n"
        for i in range(60)
    }
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1].encode()), files.items()))
    checker = stack["SourceDataCheckerFunctionName"]
    old = set_checker_env(client, checker, {"INLINE_LIMIT_BYTES": "2000"})
    try:
        done = run(client, stack, {"engine": "glue", "bucket": bucket, "prefix": prefix}, timeout=300)
    finally:
        set_checker_env(client, checker, {"INLINE_LIMIT_BYTES": old.get("INLINE_LIMIT_BYTES")})
    assert done["status"] == "SUCCEEDED", done

    params = start_job_run_parameters(client, done["executionArn"])
    assert set(params["Arguments"]) == {"--items_location"}, params
    location = params["Arguments"]["--items_location"]
    match = re.fullmatch(r"s3://([^/]+)/(.+)", location)
    assert match, location
    assert match[1] == stack["ProcessedBucketName"], location
    items = json.loads(s3.get_object(Bucket=match[1], Key=match[2])["Body"].read())
    want = listed(client, bucket, prefix)
    assert set(want) == set(files)
    assert items_by_key(items, bucket) == want
    assert params["NumberOfWorkers"] == MIN_WORKERS


def fnv1a64(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def glue_execution_name(bucket: str, key: str, etag: str) -> str:
    """s3-processor's name for a routed file, written again from its definition: `glue-`,
    the file name with characters outside [A-Za-z0-9_-] as `-` (at most 58), `-`, and the
    FNV-1a 64 hash of bucket NUL key NUL etag."""
    stem = re.sub(r"[^A-Za-z0-9_-]", "-", key.rsplit("/", 1)[-1])[:58]
    identity = "\0".join((bucket, key, etag)).encode()
    return f"glue-{stem}-{fnv1a64(identity):016x}"


def test_a_file_over_the_route_threshold_starts_a_glue_workflow_for_exactly_that_file(stack, client):
    s3, sfn = client("s3"), client("stepfunctions")
    bucket = stack["RawBucketName"]
    key = "raw-data/customers/route/big orders.csv"
    header, *rows = SAMPLE.read_text().splitlines(keepends=True)
    valid = rows[0]
    body = header + "".join(valid.replace(valid.split(",")[0], str(300000 + i), 1) for i in range(30000))
    assert len(body) > ROUTE_BYTES
    s3.put_object(Bucket=bucket, Key=key, Body=body.encode())
    etag, size = listed(client, bucket, key)[key]
    name = glue_execution_name(bucket, key, etag)
    arn = stack["EtlPipelineStateMachineArn"].replace(":stateMachine:", ":execution:") + f":{name}"

    # The S3 trigger's s3-processor starts it.
    done = wait_for(
        f"execution {name}",
        lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d,
        timeout=300,
        interval=1,
    )
    assert json.loads(done["input"]) == {
        "engine": "glue",
        "files": [{"bucket": bucket, "key": key, "etag": etag, "size": size}],
        "totalBytes": size,
        "glueWorkers": MIN_WORKERS,
    }
    assert done["status"] == "SUCCEEDED", done
    params = start_job_run_parameters(client, arn)
    assert json.loads(params["Arguments"]["--items"]) == [{"bucket": bucket, "key": key, "etag": etag, "size": size}]
    assert params["NumberOfWorkers"] == MIN_WORKERS

    # The Glue engine (the real Spark job, run by LocalStack's Glue provider) processed it:
    # its manifest names the version routed, its rows are in the same table's partitions.
    manifest = manifests_by_source(client, stack, bucket)[key]
    assert manifest["engine"] == "spark", manifest["engine"]
    assert manifest["status"] == "succeeded"
    assert manifest["source"]["etag"].strip('"') == etag
    counts = manifest["counts"]
    assert counts["rows_in"] == 30000
    assert counts["rows_out"] + counts["duplicates"] + counts["quarantined"] == counts["rows_in"]
    assert counts["rows_out"] == 30000, counts
    processed = stack["ProcessedBucketName"]
    assert sum(o["rows"] for o in manifest["outputs"]) == 30000
    for o in manifest["outputs"]:
        assert o["path"].startswith(f"s3://{processed}/processed/customers/"), o["path"]
        client("s3").head_object(Bucket=processed, Key=o["path"].split("/", 3)[3])
    glue = client("glue")
    table = glue.get_table(DatabaseName=stack["GlueDatabaseName"], Name="customers")["Table"]
    assert table["StorageDescriptor"]["Location"] == f"s3://{processed}/processed/customers/"
    registered = {
        tuple(p["Values"])
        for page in glue.get_paginator("get_partitions").paginate(
            DatabaseName=stack["GlueDatabaseName"], TableName="customers"
        )
        for p in page["Partitions"]
    }
    keys = [k["Name"] for k in table["PartitionKeys"]]
    assert {tuple(o["partition"][k] for k in keys) for o in manifest["outputs"]} <= registered

    def routed_executions() -> list[str]:
        return [
            e["name"]
            for page in sfn.get_paginator("list_executions").paginate(
                stateMachineArn=stack["EtlPipelineStateMachineArn"]
            )
            for e in page["executions"]
            if e["name"].startswith("glue-big-orders-csv-")
        ]

    # Only that execution was started for it.
    assert routed_executions() == [name]

    before = manifests_by_source(client, stack, bucket).get(key)

    # The same file as a Map item of a lambda-engine run: s3-processor routes it again, the
    # start finds the execution already there, and the item succeeds.
    mapped = run(client, stack, {"prefix": "raw-data/customers/route/", "reprocess": True}, timeout=300)
    assert mapped["status"] == "SUCCEEDED", mapped
    assert "ProcessFiles" in states_entered(client, mapped["executionArn"])
    assert routed_executions() == [name]
    # Not processed by the Map's s3-processor either: its manifest is still the Glue engine's.
    assert manifests_by_source(client, stack, bucket).get(key) == before
