"""The deployed stack's operational paths: failed asynchronous events kept for replay, the
versioned raw bucket, Step Functions logging."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from helpers import list_keys as keys, wait_for

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "infra" / "samples" / "customers.csv"


def s3_notification(bucket: str, key: str) -> dict:
    """An ObjectCreated notification as S3 sends it to the function."""
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "awsRegion": "us-east-1",
                "eventTime": "2026-01-01T00:00:00.000Z",
                "eventName": "ObjectCreated:Put",
                "userIdentity": {"principalId": "AWS:tester"},
                "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": "0", "x-amz-id-2": "0"},
                "s3": {
                    "s3SchemaVersion": "1.0",
                    "configurationId": "e2e",
                    "bucket": {
                        "name": bucket,
                        "ownerIdentity": {"principalId": "tester"},
                        "arn": f"arn:aws:s3:::{bucket}",
                    },
                    # No eTag or versionId: the object does not exist yet.
                    "object": {"key": key, "size": 1, "sequencer": "0"},
                },
            }
        ]
    }


def failure_records(client, queue_url: str, key: str) -> list[tuple[dict, str]]:
    """On-failure records in the queue whose event names `key`, with their receipt handles.
    Records of other events are left for their visibility timeout to end."""
    found = []
    sqs = client("sqs")
    for m in sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", []):
        record = json.loads(m["Body"])
        keys_named = [r["s3"]["object"]["key"] for r in record.get("requestPayload", {}).get("Records", [])]
        if key in keys_named:
            found.append((record, m["ReceiptHandle"]))
    return found


def test_failed_s3_event_is_kept_with_its_error_and_replays(stack, client):
    """An S3 event that fails every attempt ends in the function's failure queue as Lambda's
    record (event, error, attempts), and replaying that event as README's Operations says
    processes the file once the cause is gone."""
    raw, processed = stack["RawBucketName"], stack["ProcessedBucketName"]
    function, queue = stack["S3ProcessorFunctionName"], stack["S3ProcessorFailureQueueUrl"]
    name = f"replay-{uuid.uuid4().hex[:10]}"
    key = f"raw-data/customers/{name}.csv"
    event = s3_notification(raw, key)
    lam = client("lambda")
    retries = lam.get_function_event_invoke_config(FunctionName=function)["MaximumRetryAttempts"]

    # The object does not exist yet: each attempt fails with NotFound. LocalStack waits 60 s
    # before the first retry and 120 s before the second, as its default retry base delay.
    lam.invoke(FunctionName=function, InvocationType="Event", Payload=json.dumps(event).encode())
    [(record, receipt)] = wait_for(
        "the failed event in the failure queue", lambda: failure_records(client, queue, key), timeout=300, interval=2
    )
    assert record["requestPayload"] == event
    assert record["requestContext"]["condition"] == "RetriesExhausted"
    assert record["requestContext"]["approximateInvokeCount"] == retries + 1
    assert record["responsePayload"]["errorType"] == "NotFound", record["responsePayload"]

    # The cause goes away: the file lands (its own notification processes it; wait for that,
    # so the replay does not run beside it).
    client("s3").put_object(Bucket=raw, Key=key, Body=SAMPLE.read_bytes())
    wait_for(
        "the upload's manifest",
        lambda: [k for k in keys(client, processed, "manifests/customers/") if name in k],
        timeout=90,
    )
    # The replay: the record's event, invoked again, then the message deleted.
    response = lam.invoke(FunctionName=function, Payload=json.dumps(record["requestPayload"]).encode())
    assert "FunctionError" not in response, response["Payload"].read()
    [result] = json.loads(response["Payload"].read())["objects"]
    assert (result["key"], result["status"]) == (key, "processed")
    client("sqs").delete_message(QueueUrl=queue, ReceiptHandle=receipt)


def test_raw_bucket_keeps_overwritten_versions(stack, client):
    raw = stack["RawBucketName"]
    # No dataset spec matches this prefix, so the processor skips these objects.
    key = f"raw-data/ops-{uuid.uuid4().hex[:10]}/note.txt"
    s3 = client("s3")
    first = s3.put_object(Bucket=raw, Key=key, Body=b"first")["VersionId"]
    s3.put_object(Bucket=raw, Key=key, Body=b"second")
    s3.delete_object(Bucket=raw, Key=key)

    listed = s3.list_object_versions(Bucket=raw, Prefix=key)
    assert len(listed.get("Versions", [])) == 2 and len(listed.get("DeleteMarkers", [])) == 1
    assert s3.get_object(Bucket=raw, Key=key, VersionId=first)["Body"].read() == b"first"


def test_failed_order_execution_is_logged(stack, client):
    """The order workflow logs to its own group: at the default level (ERROR), a failed
    execution's failure event."""
    sfn = client("stepfunctions")
    arn = sfn.start_execution(
        stateMachineArn=stack["OrderFulfillmentStateMachineArn"],
        name=f"ops-{uuid.uuid4().hex[:12]}",
        input=json.dumps({"order": {"customer_id": "c-1"}}),  # no amount: InvalidOrder
    )["executionArn"]
    wait_for("the order execution to fail", lambda: sfn.describe_execution(executionArn=arn)["status"] == "FAILED")

    # The template's name for it (default NamePrefix).
    group = f"/aws/vendedlogs/states/serverless-etl-{stack['Stage']}-order-fulfillment"

    def failure_events() -> list[dict]:
        events = client("logs").filter_log_events(logGroupName=group)["events"]
        return [
            m for m in (json.loads(e["message"]) for e in events)
            if m["execution_arn"] == arn and m["type"] == "ExecutionFailed"
        ]

    [failed] = wait_for("the execution's failure in its log group", failure_events)
    assert failed["details"]["error"] == "InvalidOrder"
