"""The deployed stack, end to end: S3 trigger, workflow (both engines, failure, no data),
Kinesis path with redelivery, and the scheduled API ingester feeding the processor."""

from __future__ import annotations

import base64
import gzip
import io
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from fake_api import API_KEY, API_PAGES
from helpers import list_keys as keys, wait_for

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "infra" / "samples" / "customers.csv"
sys.path.insert(0, str(REPO / "infra" / "glue"))
from etl_spark.ids import output_id  # noqa: E402


def body(client, bucket: str, key: str) -> bytes:
    return client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()


def parquet_rows(client, bucket: str, key: str) -> list[dict[str, Any]]:
    return pq.read_table(io.BytesIO(body(client, bucket, key))).to_pylist()


def run_workflow(client, stack: dict[str, str], payload: dict[str, Any], timeout: float = 180) -> dict[str, Any]:
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
    )


def state_output(client, execution_arn: str, state: str) -> dict[str, Any]:
    events = client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    [exited] = [e["stateExitedEventDetails"] for e in events
                if e.get("stateExitedEventDetails", {}).get("name") == state]
    return json.loads(exited["output"])


def rows_without_processed_at(client, bucket: str, uri: str) -> list[str]:
    """A data file's rows, sorted, without the run's clock (processed_at)."""
    rows = parquet_rows(client, bucket, uri.removeprefix(f"s3://{bucket}/"))
    return sorted(repr(sorted((k, v) for k, v in r.items() if k != "processed_at")) for r in rows)


def states_entered(client, execution_arn: str) -> list[str]:
    events = client("stepfunctions").get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]


def messages_for(client, queue_url: str, execution_arn: str, timeout: float = 30) -> list[dict]:
    """The SNS messages (raw delivery, JSON bodies) that name this execution."""
    sqs = client("sqs")
    found: list[dict] = []

    def poll():
        for m in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=m["ReceiptHandle"])
            try:
                message = json.loads(m["Body"])
            except ValueError:
                continue
            if isinstance(message, dict) and message.get("execution") == execution_arn:
                found.append(message)
        return found

    return wait_for(f"an SNS message for {execution_arn}", poll, timeout=timeout)


def test_csv_upload_becomes_parquet_partitions_and_quarantine(stack, client):
    raw, processed, quarantine = stack["RawBucketName"], stack["ProcessedBucketName"], stack["QuarantineBucketName"]
    key = "raw-data/customers/upload/customers.csv"
    client("s3").put_object(Bucket=raw, Key=key, Body=SAMPLE.read_bytes())

    manifest_key = wait_for(
        "the s3-processor manifest",
        lambda: [k for k in keys(client, processed, "manifests/customers/") if "customers.csv" in k],
        timeout=90,
    )[0]
    manifest = json.loads(body(client, processed, manifest_key))
    counts = manifest["counts"]
    # The sample's defects are known: 23 records, 2 duplicates, 8 rejected with reasons.
    assert (counts["rows_in"], counts["rows_out"], counts["duplicates"], counts["quarantined"]) == (23, 13, 2, 8)
    assert counts["rows_in"] == counts["rows_out"] + counts["duplicates"] + counts["quarantined"]
    assert sum(counts["quarantined_by_reason"].values()) == 8

    # Every output file is Parquet with the rows the manifest claims, in its partition.
    total = 0
    for out in manifest["outputs"]:
        out_key = out["path"].removeprefix(f"s3://{processed}/")
        rows = parquet_rows(client, processed, out_key)
        assert len(rows) == out["rows"]
        for column, value in out["partition"].items():
            assert f"{column}={value}" in out_key
        # Partition columns live in the path (hive style), the rest in the file.
        assert out["partition"]["customer_segment"] in ("High", "Medium", "Low")
        assert "customer_segment" not in rows[0] and isinstance(rows[0]["customer_id"], int)
        assert all("@" in r["email"] for r in rows)
        total += len(rows)
    assert total == 13

    # Rejected rows are kept with their reason.
    q_key = manifest["quarantine"]["path"].removeprefix(f"s3://{quarantine}/")
    rejected = parquet_rows(client, quarantine, q_key)
    assert len(rejected) == 8
    reasons: dict[str, int] = {}
    for r in rejected:
        reasons[r["_reject_code"]] = reasons.get(r["_reject_code"], 0) + 1
        assert r["_reject_reason"]
    assert reasons == counts["quarantined_by_reason"]

    # The Glue table and one partition per output directory, no crawler needed.
    glue = client("glue")
    table = glue.get_table(DatabaseName=stack["GlueDatabaseName"], Name="customers")["Table"]
    assert [k["Name"] for k in table["PartitionKeys"]] == ["country", "customer_segment"]
    partitions = glue.get_partitions(DatabaseName=stack["GlueDatabaseName"], TableName="customers")["Partitions"]
    assert {tuple(p["Values"]) for p in partitions} >= {
        (o["partition"]["country"], o["partition"]["customer_segment"]) for o in manifest["outputs"]
    }


def test_workflow_lambda_engine_succeeds_and_notifies(stack, client, topics):
    raw = stack["RawBucketName"]
    client("s3").put_object(Bucket=raw, Key="raw-data/customers/nightly/a.csv", Body=SAMPLE.read_bytes())
    client("s3").put_object(Bucket=raw, Key="raw-data/customers/nightly/b.csv", Body=SAMPLE.read_bytes())

    # The S3 trigger processes the uploads too, and the workflow skips files already
    # processed with the same ETag (test_workflow_listing.py): reprocess, as a user would.
    done = run_workflow(client, stack, {"prefix": "raw-data/customers/nightly/", "reprocess": True})
    assert done["status"] == "SUCCEEDED", done
    assert "ProcessFiles" in states_entered(client, done["executionArn"])
    [message] = messages_for(client, topics["NotificationTopicArn"], done["executionArn"])
    assert message["status"] == "SUCCEEDED" and message["engine"] == "lambda" and message["fileCount"] == 2
    # Both files were processed by the Map (a manifest each).
    manifests = keys(client, stack["ProcessedBucketName"], "manifests/customers/")
    assert any(k.split("/")[-1].startswith("a.csv-") for k in manifests)
    assert any(k.split("/")[-1].startswith("b.csv-") for k in manifests)


def test_workflow_glue_engine_runs_the_spark_job_on_the_listed_files(stack, client, topics):
    raw, processed = stack["RawBucketName"], stack["ProcessedBucketName"]
    key = "raw-data/customers/glue/c.csv"
    client("s3").put_object(Bucket=raw, Key=key, Body=SAMPLE.read_bytes())
    # The S3 trigger's Lambda run first: what the Glue engine publishes must equal it.
    ident = output_id(raw, key)
    manifest_key = f"manifests/customers/{ident}.json"
    wait_for("the s3-processor manifest", lambda: manifest_key in keys(client, processed, "manifests/customers/"),
             timeout=90)
    by_lambda = json.loads(body(client, processed, manifest_key))
    lambda_rows = {o["path"]: rows_without_processed_at(client, processed, o["path"]) for o in by_lambda["outputs"]}

    done = run_workflow(client, stack, {"engine": "glue", "prefix": "raw-data/customers/glue/", "reprocess": True},
                        timeout=600)
    assert done["status"] == "SUCCEEDED", done
    entered = states_entered(client, done["executionArn"])
    assert "StartGlueJob" in entered and "CheckGlueJob" in entered
    [message] = messages_for(client, topics["NotificationTopicArn"], done["executionArn"])
    assert message["engine"] == "glue"
    # The run this execution started ran the job, on exactly the listed file.
    run_id = state_output(client, done["executionArn"], "StartGlueJob")["glue"]["jobRunId"]
    run = client("glue").get_job_run(JobName=stack["GlueJobName"], RunId=run_id)["JobRun"]
    assert run["JobRunState"] == "SUCCEEDED", run
    assert [(i["bucket"], i["key"]) for i in json.loads(run["Arguments"]["--items"])] == [(raw, key)]
    # Published over the Lambda's run: same keys, rows, counts; the manifest says spark.
    by_glue = json.loads(body(client, processed, manifest_key))
    assert by_glue.get("engine") == "spark", "the job run did not publish this file"
    assert by_glue["counts"] == by_lambda["counts"] and by_glue["schema"] == by_lambda["schema"]
    assert [o["path"] for o in by_glue["outputs"]] == list(lambda_rows)
    for path, rows in lambda_rows.items():
        assert rows_without_processed_at(client, processed, path) == rows, path
    partitions = client("glue").get_partitions(DatabaseName=stack["GlueDatabaseName"], TableName="customers")
    assert {tuple(p["Values"]) for p in partitions["Partitions"]} >= {
        (o["partition"]["country"], o["partition"]["customer_segment"]) for o in by_glue["outputs"]}


def test_workflow_failure_sends_error_and_cause_to_alerts(stack, client, topics):
    # A file the processor cannot read: a .gz that is not gzip.
    client("s3").put_object(
        Bucket=stack["RawBucketName"], Key="raw-data/customers/broken/x.csv.gz", Body=b"not gzip at all"
    )
    done = run_workflow(client, stack, {"prefix": "raw-data/customers/broken/"})
    assert done["status"] == "FAILED"
    [alert] = messages_for(client, topics["AlertTopicArn"], done["executionArn"])
    assert alert["status"] == "FAILED"
    # As in AWS, a Distributed Map reports its own error, not the item's (the failed item's
    # InvalidInput and file are in the map run's child execution).
    assert alert["error"] == "States.ExceedToleratedFailureThreshold" and alert["cause"]
    assert "ProcessFiles" in states_entered(client, done["executionArn"])

    # A Glue job that does not exist fails the same way.
    done = run_workflow(
        client,
        stack,
        {"engine": "glue", "glueJobName": "no-such-job", "prefix": "raw-data/customers/glue/", "reprocess": True},
    )
    assert done["status"] == "FAILED"
    [alert] = messages_for(client, topics["AlertTopicArn"], done["executionArn"])
    assert "EntityNotFound" in alert["error"] + alert["cause"]


def test_workflow_without_new_data_ends_cleanly(stack, client):
    done = run_workflow(client, stack, {"prefix": "raw-data/nothing-here/"})
    assert done["status"] == "SUCCEEDED"
    entered = states_entered(client, done["executionArn"])
    assert entered[-1] == "NoDataAvailable"
    assert "ProcessFiles" not in entered and "NotifySuccess" not in entered


def kinesis_event(records: list[dict], stream_arn: str) -> dict:
    """The event an event source mapping would deliver for these put_records results."""
    return {
        "Records": [
            {
                "eventSource": "aws:kinesis",
                "eventSourceARN": stream_arn,
                "eventID": f"{r['ShardId']}:{r['SequenceNumber']}",
                "eventName": "aws:kinesis:record",
                "awsRegion": "us-east-1",
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": r["PartitionKey"],
                    "sequenceNumber": r["SequenceNumber"],
                    "data": base64.b64encode(r["Data"]).decode(),
                    "approximateArrivalTimestamp": time.time(),
                },
            }
            for r in records
        ]
    }


def test_stream_archive_sessions_and_one_order_per_purchase_even_on_redelivery(stack, client):
    kinesis, sfn = client("kinesis"), client("stepfunctions")
    stream = stack["EventStreamName"]
    customer = f"c-{uuid.uuid4().hex[:8]}"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    events = [
        {"event_type": "page_view", "customer_id": customer, "session_id": "s1", "page": "/", "timestamp": now},
        {"event_type": "page_view", "customer_id": customer, "session_id": "s1", "page": "/p", "timestamp": now},
        {"event_type": "purchase", "customer_id": customer, "session_id": "s1", "amount": 19.5, "timestamp": now},
        {"event_type": "purchase", "customer_id": customer, "session_id": "s1", "amount": 5.0, "timestamp": now},
    ]
    data = [json.dumps(e).encode() for e in events]
    put = kinesis.put_records(
        StreamName=stream, Records=[{"Data": d, "PartitionKey": customer} for d in data]
    )
    assert put["FailedRecordCount"] == 0
    sent = [{**r, "Data": d, "PartitionKey": customer} for r, d in zip(put["Records"], data)]

    def orders() -> list[dict]:
        found = sfn.list_executions(stateMachineArn=stack["OrderFulfillmentStateMachineArn"])["executions"]
        # Named order-<shard number>-<sequence number>.
        mine = {f"-{r['SequenceNumber']}" for r in sent}
        return [e for e in found if any(e["name"].endswith(m) for m in mine)]

    wait_for("two order executions", lambda: len(orders()) == 2, timeout=90)

    # The archive holds every record of ours, one gzip NDJSON object per batch.
    archive = stack["ArchiveBucketName"]

    def archived() -> list[dict]:
        lines = []
        for k in keys(client, archive, "archive/"):
            for line in gzip.decompress(body(client, archive, k)).splitlines():
                record = json.loads(line)
                if customer in json.dumps(record):
                    lines.append(record)
        return lines

    wait_for("the archived batch", lambda: len(archived()) == 4, timeout=30)
    session_lines = [
        json.loads(line)
        for k in keys(client, archive, "sessions/")
        for line in body(client, archive, k).splitlines()
        if customer in line.decode()
    ]
    assert sum(s["page_views"] for s in session_lines) == 2
    assert abs(sum(s["total_amount"] for s in session_lines) - 24.5) < 1e-9

    # The same batch again (as Lambda would redeliver it): no new order executions.
    response = client("lambda").invoke(
        FunctionName=stack["KinesisConsumerFunctionName"],
        Payload=json.dumps(kinesis_event(sent, f"arn:aws:kinesis:us-east-1:000000000000:stream/{stream}")).encode(),
    )
    assert "FunctionError" not in response, response["Payload"].read()
    assert json.loads(response["Payload"].read()) == {"batchItemFailures": []}
    assert len(orders()) == 2
    for e in orders():
        wait_for(
            f"order {e['name']} to succeed",
            lambda e=e: sfn.describe_execution(executionArn=e["executionArn"])["status"] == "SUCCEEDED",
            timeout=60,
        )


def test_schedule_runs_the_ingester_and_its_output_is_processed(stack, client, api):
    """The rule (rate(1 minute)) was created with the stack; LocalStack evaluates schedules
    about once a minute, so this waits up to two."""
    raw, processed = stack["RawBucketName"], stack["ProcessedBucketName"]
    # The ingester's date-partitioned keys only: other tests land files for the same spec.
    landed = wait_for(
        "the ingester's NDJSON", lambda: keys(client, raw, "raw-api-data/customers/year="), timeout=150, interval=2
    )
    lines = [json.loads(x) for x in body(client, raw, landed[0]).splitlines()]
    assert len(lines) == sum(len(p) for p in API_PAGES)  # both pages followed
    assert all("_ingested_at" in x for x in lines)
    assert any(path.endswith("page=2") for path in api[1].requests)

    source = f"s3://{raw}/{landed[0]}"

    def manifest_of_landed():
        for key in keys(client, processed, "manifests/api_customers/"):
            m = json.loads(body(client, processed, key))
            if m["source"]["name"] == source:
                return m
        return None

    counts = wait_for("the processor's manifest for the API data", manifest_of_landed, timeout=60)["counts"]
    # 5 records: one duplicate customer_id, one email without '@'.
    assert (counts["rows_in"], counts["rows_out"], counts["duplicates"], counts["quarantined"]) == (5, 3, 1, 1)

    # The API key never reaches a log.
    logs = client("logs")
    group = f"/aws/lambda/{stack['ApiIngesterFunctionName']}"
    events = logs.filter_log_events(logGroupName=group)["events"]
    assert events, "the ingester logged nothing"
    assert not any(API_KEY in e["message"] for e in events)
