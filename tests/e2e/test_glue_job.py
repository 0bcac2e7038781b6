"""The Glue job (infra/glue/job.py, the etl_spark package as Glue gets it: the zip of
`make glue-package` on PYTHONPATH) against the Lambda engine on the same S3 objects in the
deployed stack. s3-processor processes the uploads first (S3 trigger); then the job runs
as Glue would start it, on the same objects, and must publish the same thing over it:
the same keys (so the same output ids), the same rows per partition, the same quarantine
rows per reason, the same manifests but for the engine, the same Glue table and partitions.

The job runs here as a host process with the Spark venv's python (what the LocalStack Glue
provider does for a job run), with AWS_ENDPOINT_URL pointing at LocalStack.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from helpers import list_keys, wait_for

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "infra" / "samples" / "customers.csv"
PACKAGE = REPO / "build" / "glue" / "etl_spark.zip"
sys.path.insert(0, str(REPO / "infra" / "glue"))
from etl_spark.ids import output_id  # noqa: E402

API_LINES = [
    {"customer_id": 1, "name": "Ann", "email": "ann@x.org", "country": "US", "purchase_amount": 700.5,
     "signup_date": "2024-01-02", "_ingested_at": "2024-05-01T10:00:00Z", "extra": 1},
    {"customer_id": 1, "name": "Ann again", "email": "ann@x.org", "country": "US", "purchase_amount": 1,
     "signup_date": "2024-01-02", "_ingested_at": "2024-05-01T10:00:00Z"},
    {"customer_id": 2, "name": None, "email": "no-at", "country": "DE", "purchase_amount": 50,
     "signup_date": "2024-02-03", "_ingested_at": "2024-05-01T10:00:00Z"},
    {"customer_id": "three", "name": "Bad id", "email": "b@x.org", "country": "FR",
     "purchase_amount": 10, "signup_date": "2024-02-03", "_ingested_at": "2024-05-01T10:00:00Z"},
    {"customer_id": 4, "name": "Dee", "email": "d@x.org", "country": "FR", "purchase_amount": 150,
     "signup_date": "2024-13-40", "_ingested_at": "2024-05-01T10:00:00Z"},
    {"customer_id": 5, "name": "Eve", "email": "e@x.org", "purchase_amount": 20,
     "signup_date": "2024-03-01", "_ingested_at": "2024-05-01T10:00:00Z"},
]


def _ndjson() -> bytes:
    lines = [json.dumps(r) for r in API_LINES]
    lines.insert(3, '{"customer_id": 9, "name": "cut off')  # a malformed record
    return ("\n".join(lines) + "\n").encode()


def _dirty_csv(tmp: Path) -> bytes:
    """`etl generate`'s dirty customers CSV (defects at known rates)."""
    etl = Path(os.environ.get("CARGO_TARGET_DIR") or REPO / "target") / "x86_64-unknown-linux-gnu" / "release" / "etl"
    out = tmp / "dirty.csv"
    subprocess.run([str(etl), "generate", "--rows", "3000", "--output", str(out)],
                   check=True, capture_output=True)
    return out.read_bytes()


def _spark_python() -> str:
    venv = subprocess.run([str(REPO / "tests" / "venv.sh"), str(REPO / "tests" / "spark" / "requirements.lock"),
                           "spark"], check=True, capture_output=True, text=True).stdout.strip()
    return f"{venv}/bin/python"


def _rows(client, bucket: str, key: str, drop: set[str]) -> list[tuple]:
    body = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    table = pq.read_table(io.BytesIO(body))
    rows = [tuple((k, repr(v)) for k, v in sorted(r.items()) if k not in drop) for r in table.to_pylist()]
    return sorted(rows)


def _published(client, stack: dict[str, str], dataset: str, ident: str, drop: set[str]) -> dict[str, Any]:
    """Everything one source's run published: keys, manifest, rows per data file and per
    quarantine reason."""
    processed, quarantine = stack["ProcessedBucketName"], stack["QuarantineBucketName"]
    manifest = json.loads(client("s3").get_object(
        Bucket=processed, Key=f"manifests/{dataset}/{ident}.json")["Body"].read())
    keys = sorted(k for k in list_keys(client, processed, f"processed/{dataset}/") if f"/{ident}." in k)
    keys += sorted(k for k in list_keys(client, processed, f"manifests/{dataset}/") if f"/{ident}." in k)
    q_keys = sorted(k for k in list_keys(client, quarantine, f"quarantine/{dataset}/") if f"/{ident}." in k)
    data = {k: _rows(client, processed, k, drop) for k in keys if k.endswith(".parquet")}
    by_reason: dict[str, list] = {}
    for k in q_keys:
        for r in _rows(client, quarantine, k, set()):
            code = dict(r)["_reject_code"]
            if code == "'malformed_record'":
                # The one documented difference (README, the Spark runner): the reason of a
                # malformed JSON record is each JSON parser's own message.
                assert dict(r)["_reject_reason"] not in ("None", "''"), r
                r = tuple(kv for kv in r if kv[0] != "_reject_reason")
            by_reason.setdefault(code, []).append(r)
    return {"keys": keys + q_keys, "manifest": manifest, "data": data, "quarantine": by_reason}


def _catalog(client, database: str, table: str) -> dict[str, Any]:
    glue = client("glue")
    t = glue.get_table(DatabaseName=database, Name=table)["Table"]
    parts = glue.get_paginator("get_partitions").paginate(DatabaseName=database, TableName=table)
    return {
        "columns": [(c["Name"], c["Type"]) for c in t["StorageDescriptor"]["Columns"]],
        "keys": [(c["Name"], c["Type"]) for c in t["PartitionKeys"]],
        "location": t["StorageDescriptor"]["Location"],
        "partitions": sorted(tuple(p["Values"]) for page in parts for p in page["Partitions"]),
    }


def _drain(client, queue_url: str) -> list[str]:
    """This test's quality alerts on the queue (other tests' messages are dropped)."""
    sqs, bodies = client("sqs"), []
    while True:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        if not got:
            return bodies
        for m in got:
            if m["Body"].startswith("Dataset ") and "/jobcmp/" in m["Body"]:
                bodies.append(m["Body"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])


def test_the_glue_job_publishes_what_the_lambda_engine_publishes(stack, client, topics, tmp_path):
    raw = stack["RawBucketName"]
    assert PACKAGE.is_file(), "build the job's package first: make glue-package"
    files = {
        ("customers", "raw-data/customers/jobcmp/sample.csv"): SAMPLE.read_bytes(),
        ("customers", "raw-data/customers/jobcmp/dirty run #1.csv"): _dirty_csv(tmp_path),
        ("api_customers", "raw-api-data/customers/jobcmp/api.ndjson.gz"): gzip.compress(_ndjson()),
    }
    broken = "raw-data/customers/jobcmp/broken.csv.gz"
    unknown = "raw-data/no-such-dataset/x.csv"
    s3 = client("s3")
    for (_, key), data in files.items():
        s3.put_object(Bucket=raw, Key=key, Body=data)
    s3.put_object(Bucket=raw, Key=broken, Body=b"not gzip at all")
    s3.put_object(Bucket=raw, Key=unknown, Body=SAMPLE.read_bytes())

    # The Lambda engine first (the S3 trigger).
    drop = {"processed_at"}
    ids = {f: output_id(raw, f[1]) for f in files}
    for (dataset, key), ident in ids.items():
        wait_for(f"s3-processor's manifest of {key}", lambda: any(
            k.endswith(f"/{ident}.json") for k in list_keys(client, stack["ProcessedBucketName"], f"manifests/{dataset}/")),
            timeout=120)
    lambda_runs = {f: _published(client, stack, f[0], ident, drop) for f, ident in ids.items()}
    db = stack["GlueDatabaseName"]
    catalogs = {d: _catalog(client, db, d) for d in ("customers", "api_customers")}
    # The Lambda runs' own alerts, all of them, before the job's.
    alerting = sum(r["manifest"]["quality"]["alert"] or r["manifest"]["status"] != "succeeded"
                   for r in lambda_runs.values())
    seen: list[str] = []
    wait_for("s3-processor's quality alerts",
             lambda: seen.extend(_drain(client, topics["AlertTopicArn"])) or len(seen) >= alerting, timeout=30)

    # The job, as Glue starts it, on the same objects (and two that it cannot process).
    items = [{"bucket": raw, "key": key, "etag": None, "size": len(data)} for (_, key), data in files.items()]
    items += [{"bucket": raw, "key": broken, "etag": None, "size": 15},
              {"bucket": raw, "key": unknown, "etag": None, "size": 1, "ignored": True}]
    env = {**os.environ, "PYTHONPATH": str(PACKAGE), "AWS_ENDPOINT_URL": stack_endpoint(),
           "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    env.pop("AWS_PROFILE", None)
    done = subprocess.run(
        [_spark_python(), str(REPO / "infra" / "glue" / "job.py"), "--JOB_NAME", "etl", "--JOB_RUN_ID", "jr_e2e",
         "--items", json.dumps(items), "--processed_bucket", stack["ProcessedBucketName"],
         "--quarantine_bucket", stack["QuarantineBucketName"], "--output_prefix", "processed/",
         "--quarantine_prefix", "quarantine/", "--manifest_prefix", "manifests/", "--glue_database", db,
         "--alert_topic_arn", stack["AlertTopicArn"], "--master", "local[2]"],
        env=env, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    # The broken file fails the run, named with its error, after the others were published.
    assert done.returncode != 0, done.stderr[-3000:]
    last = done.stderr.strip().splitlines()[-1]
    assert "JobFailed: 1 of 5 files failed" in last and f"s3://{raw}/{broken}" in last and "gzip" in last, last
    assert f"s3://{raw}/{unknown}: skipped: no dataset spec for this prefix" in done.stderr
    emf = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{") and '"_aws"' in line]
    assert sorted(m["source"] for m in emf) == sorted(f"s3://{raw}/{k}" for _, k in files)

    alerts = []
    for f, ident in ids.items():
        job = _published(client, stack, f[0], ident, drop)
        mine = lambda_runs[f]
        # Same keys: the job's run replaced the Lambda's, object for object.
        assert job["keys"] == mine["keys"], f
        assert job["data"] == mine["data"], f"{f}: data rows differ"
        assert job["quarantine"] == mine["quarantine"], f"{f}: quarantine rows differ"
        m_job, m_lambda = job["manifest"], mine["manifest"]
        assert m_job["engine"] == "spark" and "engine" not in m_lambda
        for field in ("dataset", "status", "counts", "schema", "input_columns", "source"):
            assert m_job[field] == m_lambda[field], f"{f}: manifest {field}"
        assert m_job["source"]["version_id"] and m_job["source"]["etag"] and m_job["source"]["last_modified"]
        strip = lambda outs: [{k: o[k] for k in ("path", "partition", "rows")} for o in outs]  # noqa: E731
        assert strip(m_job["outputs"]) == strip(m_lambda["outputs"]), f
        assert (m_job["quarantine"] or {}).get("rows") == (m_lambda["quarantine"] or {}).get("rows")
        assert (m_job["quarantine"] or {}).get("path") == (m_lambda["quarantine"] or {}).get("path")
        for a, b in zip(m_job["quality"]["rules"], m_lambda["quality"]["rules"], strict=True):
            assert a == b, f
        assert {k: m_job["quality"][k] for k in ("score", "passed", "alert")} == {
            k: m_lambda["quality"][k] for k in ("score", "passed", "alert")}
        if m_job["quality"]["alert"] or m_job["status"] != "succeeded":
            alerts.append(m_job["source"]["name"])
    # No intent record left behind, the same table and partitions, the same alerts.
    assert not list_keys(client, stack["ProcessedBucketName"], "manifests/_publishing/")
    # (The scheduled api-ingester may land and register other files meanwhile: partitions
    # are compared as "the job's are there, none went away".)
    ours = {(f[0], tuple(o["partition"].values())) for f, r in lambda_runs.items() for o in r["manifest"]["outputs"]}
    for d, before in catalogs.items():
        after = _catalog(client, db, d)
        assert {k: after[k] for k in ("columns", "keys", "location")} == {
            k: before[k] for k in ("columns", "keys", "location")}, d
        assert set(before["partitions"]) <= set(after["partitions"]), d
        assert {p for ds, p in ours if ds == d} <= set(before["partitions"]), d
    sent: list[str] = []
    wait_for("the job's quality alerts",
             lambda: sent.extend(_drain(client, topics["AlertTopicArn"])) or len(sent) >= len(alerts), timeout=30)
    assert sorted(b.split(" from ", 1)[1].split("\n", 1)[0] for b in sent) == sorted(alerts)


def test_s3_work_dirs_list_move_publish_and_clean_up(stack, client):
    """The work dir the job stages in on a Glue cluster (Spark writes s3:// there, which
    local Spark cannot): listing, moving and publishing by server-side copy."""
    from etl_spark.workdir import S3Work

    s3, bucket, quarantine = client("s3"), stack["ProcessedBucketName"], stack["QuarantineBucketName"]
    prefix = "manifests/_staging/jr_test/customers/x.csv-00/"
    work = S3Work(s3, bucket, prefix)
    s3.put_object(Bucket=bucket, Key=f"{prefix}scratch/country=a%2Fb/part-0.parquet", Body=b"PAR1")
    s3.put_object(Bucket=bucket, Key=f"{prefix}scratch/_SUCCESS", Body=b"")
    assert work.spark_path("scratch") == f"s3://{bucket}/{prefix}scratch"
    assert work.files("scratch") == [("_SUCCESS", 0), ("country=a%2Fb/part-0.parquet", 4)]
    work.move("scratch/country=a%2Fb/part-0.parquet", "data/country=a%2Fb/x.parquet")
    assert work.files("data") == [("country=a%2Fb/x.parquet", 4)]
    work.publish(s3, "data/country=a%2Fb/x.parquet", quarantine, "quarantine/t/x.parquet",
                 "application/vnd.apache.parquet")
    got = s3.get_object(Bucket=quarantine, Key="quarantine/t/x.parquet")
    assert got["Body"].read() == b"PAR1" and got["ContentType"] == "application/vnd.apache.parquet"
    s3.delete_object(Bucket=quarantine, Key="quarantine/t/x.parquet")
    for rel in ("data", "scratch"):
        work.remove(rel)
    assert not list_keys(client, bucket, prefix)


def stack_endpoint() -> str:
    import stack as stack_tool

    return stack_tool.ENDPOINT


@pytest.fixture(autouse=True)
def _no_bytecode(monkeypatch):
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
