"""The workflow's listing side, deployed: files already processed are skipped (and counted)
unless the run asks to reprocess, and a listing past the inline payload limit goes through
the Distributed Map's ItemReader (ProcessListedFiles) and processes every file once."""

from __future__ import annotations

import json
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from helpers import invoke, list_keys, wait_for
from test_pipeline import SAMPLE, states_entered

# Files in the large-listing run (ETL_E2E_BULK_FILES=2000 for the full proof; README has
# timings): 250 keep `make test` short and still go well past the lowered inline limit.
BULK_FILES = int(os.environ.get("ETL_E2E_BULK_FILES", "250"))


def run(client, stack: dict[str, str], payload: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
    sfn = client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=stack["EtlPipelineStateMachineArn"],
        name=f"e2e-{uuid.uuid4().hex[:12]}",
        input=json.dumps(payload),
    )["executionArn"]
    return wait_for(
        "the workflow to finish",
        lambda: (d := sfn.describe_execution(executionArn=arn))["status"] != "RUNNING" and d,
        timeout=timeout,
        interval=1,
    )


def function_name(client, stack: dict[str, str], logical_id: str) -> str:
    return client("cloudformation").describe_stack_resource(
        StackName=stack["StackName"], LogicalResourceId=logical_id
    )["StackResourceDetail"]["PhysicalResourceId"]


def new_raw_bucket(client, stack: dict[str, str], name: str) -> str:
    """A raw bucket of the test's own: no S3 notification processes what lands there, so
    only the workflow does (the workflow's input may name any bucket)."""
    bucket = f"{stack['Stage']}-{name}-{uuid.uuid4().hex[:6]}"
    client("s3").create_bucket(Bucket=bucket)
    return bucket


def manifests_by_source(client, stack: dict[str, str], bucket: str) -> dict[str, dict]:
    """s3-processor's manifests of files in `bucket`, by source key (read in parallel)."""
    processed = stack["ProcessedBucketName"]
    s3 = client("s3")
    keys = list_keys(client, processed, "manifests/customers/")

    def read(key: str) -> dict:
        return json.loads(s3.get_object(Bucket=processed, Key=key)["Body"].read())

    with ThreadPoolExecutor(16) as pool:
        manifests = list(pool.map(read, keys))
    prefix = f"s3://{bucket}/"
    return {
        m["source"]["name"].removeprefix(prefix): m for m in manifests if m["source"]["name"].startswith(prefix)
    }


def listed_etags(client, bucket: str, prefix: str) -> dict[str, str]:
    etags = {}
    for page in client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        etags.update({o["Key"]: o["ETag"].strip('"') for o in page.get("Contents", [])})
    return etags


def test_processed_files_are_skipped_and_counted_unless_reprocessing(stack, client):
    s3 = client("s3")
    bucket = new_raw_bucket(client, stack, "skip")
    prefix = "raw-data/customers/skip/"
    for name in ("a.csv", "b.csv"):
        s3.put_object(Bucket=bucket, Key=prefix + name, Body=SAMPLE.read_bytes())
    # a.csv is processed once outside the workflow (as the S3 trigger would).
    response, out = invoke(
        client, function_name(client, stack, "S3ProcessorFunction"), {"bucket": bucket, "key": prefix + "a.csv"}
    )
    assert "FunctionError" not in response, out
    first = manifests_by_source(client, stack, bucket)
    assert set(first) == {prefix + "a.csv"}

    done = run(client, stack, {"bucket": bucket, "prefix": prefix})
    assert done["status"] == "SUCCEEDED", done
    source = json.loads(done["output"])["source"]
    assert (source["fileCount"], source["skippedCount"]) == (1, 1)
    second = manifests_by_source(client, stack, bucket)
    assert set(second) == {prefix + "a.csv", prefix + "b.csv"}
    # a.csv's manifest is the first run's: it was not processed again.
    assert second[prefix + "a.csv"]["started_at"] == first[prefix + "a.csv"]["started_at"]

    # Nothing new: the run ends without processing, and says how many it skipped.
    done = run(client, stack, {"bucket": bucket, "prefix": prefix})
    assert done["status"] == "SUCCEEDED", done
    assert states_entered(client, done["executionArn"])[-1] == "NoDataAvailable"
    source = json.loads(done["output"])["source"]
    assert (source["dataAvailable"], source["fileCount"], source["skippedCount"]) == (False, 0, 2)

    # A changed file (new ETag) is processed again; the unchanged one is still skipped.
    s3.put_object(Bucket=bucket, Key=prefix + "b.csv", Body=SAMPLE.read_bytes() + SAMPLE.read_bytes().splitlines(keepends=True)[-1])
    done = run(client, stack, {"bucket": bucket, "prefix": prefix})
    assert done["status"] == "SUCCEEDED", done
    source = json.loads(done["output"])["source"]
    assert (source["fileCount"], source["skippedCount"]) == (1, 1)
    third = manifests_by_source(client, stack, bucket)
    assert third[prefix + "b.csv"]["source"]["etag"] == listed_etags(client, bucket, prefix)[prefix + "b.csv"]
    assert third[prefix + "a.csv"]["started_at"] == first[prefix + "a.csv"]["started_at"]

    # On request, everything is processed again.
    done = run(client, stack, {"bucket": bucket, "prefix": prefix, "reprocess": True})
    assert done["status"] == "SUCCEEDED", done
    source = json.loads(done["output"])["source"]
    assert (source["fileCount"], source["skippedCount"]) == (2, 0)
    fourth = manifests_by_source(client, stack, bucket)
    assert fourth[prefix + "a.csv"]["started_at"] != first[prefix + "a.csv"]["started_at"]


def set_checker_env(client, name: str, changes: dict[str, str | None]) -> dict[str, str]:
    """Applies `changes` (None removes) to a function's environment; returns the old one."""
    lam = client("lambda")
    old = lam.get_function_configuration(FunctionName=name)["Environment"]["Variables"]
    new = {k: v for k, v in {**old, **changes}.items() if v is not None}
    lam.update_function_configuration(FunctionName=name, Environment={"Variables": new})
    wait_for(
        f"{name} to be updated",
        lambda: lam.get_function_configuration(FunctionName=name)["LastUpdateStatus"] == "Successful",
        timeout=60,
    )
    return old


def test_a_listing_past_the_inline_limit_is_read_by_the_map_and_each_file_processed_once(stack, client):
    s3, sfn = client("s3"), client("stepfunctions")
    bucket = new_raw_bucket(client, stack, "bulk")
    prefix = "raw-data/customers/bulk/"
    header = SAMPLE.read_text().splitlines()[0]
    # One valid row per file, each with its own customer id.
    files = {
        f"{prefix}f{i:05d}.csv": f"{header}\n{100000 + i},Name {i},n{i}@example.com,US,{i % 900}.00,1.00,d,2024-01-15\n"
        for i in range(BULK_FILES)
    }
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1].encode()), files.items()))

    checker = stack["SourceDataCheckerFunctionName"]
    # A limit a few files exceed, whatever BULK_FILES is.
    old = set_checker_env(client, checker, {"INLINE_LIMIT_BYTES": "2000"})
    try:
        started = time.monotonic()
        done = run(client, stack, {"bucket": bucket, "prefix": prefix}, timeout=600)
        elapsed = time.monotonic() - started
        assert done["status"] == "SUCCEEDED", done
        entered = states_entered(client, done["executionArn"])
        assert "ProcessListedFiles" in entered and "ProcessFiles" not in entered
        print(f"{BULK_FILES} files through ProcessListedFiles in {elapsed:.0f} s")

        # The Map ran one item per file, each succeeding once.
        [map_run] = sfn.list_map_runs(executionArn=done["executionArn"])["mapRuns"]
        counts = sfn.describe_map_run(mapRunArn=map_run["mapRunArn"])["itemCounts"]
        assert (counts["total"], counts["succeeded"], counts["failed"]) == (BULK_FILES, BULK_FILES, 0), counts

        # Every file has one manifest recording the ETag S3 lists for it, and its one row.
        manifests = manifests_by_source(client, stack, bucket)
        etags = listed_etags(client, bucket, prefix)
        assert set(manifests) == set(files) == set(etags)
        assert all(m["source"]["etag"] == etags[k] for k, m in manifests.items())
        assert all((m["counts"]["rows_in"], m["counts"]["rows_out"]) == (1, 1) for m in manifests.values())

        # A second run over the same listing finds every file done.
        done = run(client, stack, {"bucket": bucket, "prefix": prefix}, timeout=300)
        assert done["status"] == "SUCCEEDED", done
        source = json.loads(done["output"])["source"]
        assert (source["fileCount"], source["skippedCount"]) == (0, BULK_FILES)
    finally:
        set_checker_env(client, checker, {"INLINE_LIMIT_BYTES": old.get("INLINE_LIMIT_BYTES")})
