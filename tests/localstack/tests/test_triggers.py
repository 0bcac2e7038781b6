"""Every trigger path of the real system runs the probe Lambda's bootstrap."""

import json

import pytest

from helpers import ACCOUNT, REGION, list_keys, read_json, run_state_machine, unique, wait_for


def allow(client, function_name: str, principal: str, source_arn: str) -> None:
    client("lambda").add_permission(
        FunctionName=function_name,
        StatementId=unique("allow"),
        Action="lambda:InvokeFunction",
        Principal=principal,
        SourceArn=source_arn,
    )


def test_s3_object_created_notification_on_a_prefix(client, probe_function, bucket):
    markers = bucket("markers")
    source = bucket("landing")
    fn = probe_function(marker_bucket=markers)
    allow(client, fn["FunctionName"], "s3.amazonaws.com", f"arn:aws:s3:::{source}")
    s3 = client("s3")
    s3.put_bucket_notification_configuration(
        Bucket=source,
        NotificationConfiguration={
            "LambdaFunctionConfigurations": [
                {
                    "LambdaFunctionArn": fn["FunctionArn"],
                    "Events": ["s3:ObjectCreated:*"],
                    "Filter": {"Key": {"FilterRules": [{"Name": "prefix", "Value": "incoming/"}]}},
                }
            ]
        },
    )

    # The object outside the prefix goes first: had it matched, its event would be ahead.
    s3.put_object(Bucket=source, Key="elsewhere/skip.csv", Body=b"a,b\n")
    s3.put_object(Bucket=source, Key="incoming/data.csv", Body=b"a,b\n1,2\n")

    marker = wait_for(
        "the S3-triggered marker",
        lambda: read_json(client, markers, "s3/incoming/data.csv"),
    )
    assert marker == {
        "bucket": source,
        "key": "incoming/data.csv",
        "event_name": "ObjectCreated:Put",
    }
    assert list_keys(client, markers, "s3/") == ["s3/incoming/data.csv"]


def test_step_functions_lambda_invoke_task(client, probe_function):
    fn = probe_function()
    definition = {
        "StartAt": "Probe",
        "States": {
            "Probe": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {
                    "FunctionName": fn["FunctionArn"],
                    "Payload": {"from": "step-functions", "input.$": "$"},
                },
                "ResultSelector": {"probe.$": "$.Payload"},
                "End": True,
            }
        },
    }

    execution = run_state_machine(client, definition, {"dataset": "customers"})

    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])["probe"]
    assert output["probe"] == "ok"
    assert output["event"] == {"from": "step-functions", "input": {"dataset": "customers"}}
    assert output["env"]["AWS_LAMBDA_FUNCTION_NAME"] == fn["FunctionName"]


@pytest.fixture
def kinesis_stream(client):
    kinesis = client("kinesis")
    name = unique("probe-stream")
    kinesis.create_stream(StreamName=name, ShardCount=1)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    yield kinesis.describe_stream(StreamName=name)["StreamDescription"]["StreamARN"]
    kinesis.delete_stream(StreamName=name, EnforceConsumerDeletion=True)


def test_kinesis_mapping_honours_batch_item_failures(
    client, probe_function, bucket, kinesis_stream
):
    markers = bucket("markers")
    fn = probe_function(marker_bucket=markers)
    lam = client("lambda")
    mapping = lam.create_event_source_mapping(
        FunctionName=fn["FunctionName"],
        EventSourceArn=kinesis_stream,
        StartingPosition="TRIM_HORIZON",
        BatchSize=10,
        MaximumBatchingWindowInSeconds=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
        MaximumRetryAttempts=2,
        BisectBatchOnFunctionError=False,
    )
    try:
        wait_for(
            "the event source mapping to be enabled",
            lambda: lam.get_event_source_mapping(UUID=mapping["UUID"])["State"] == "Enabled",
        )
        # One put, one shard: the three records arrive in this order, in one batch.
        client("kinesis").put_records(
            StreamName=kinesis_stream.rsplit("/", 1)[1],
            Records=[
                {"Data": json.dumps({"n": 1}).encode(), "PartitionKey": "p"},
                {"Data": json.dumps({"n": 2, "fail": True}).encode(), "PartitionKey": "p"},
                {"Data": json.dumps({"n": 3}).encode(), "PartitionKey": "p"},
            ],
        )

        def deliveries():
            """How often each record (by its "n") reached the function, once record 2 has
            been delivered three times: the batch and its two retries (MaximumRetryAttempts)."""
            counts = {1: 0, 2: 0, 3: 0}
            for key in list_keys(client, markers, "kinesis/"):
                for record in read_json(client, markers, key)["records"]:
                    counts[json.loads(record["data"])["n"]] += 1
            return counts if counts[2] >= 3 else None

        counts = wait_for("record 2 to be retried twice", deliveries, timeout=60)
    finally:
        lam.delete_event_source_mapping(UUID=mapping["UUID"])

    # Record 2's reported failure was honoured: Lambda retried from record 2 on, so record 1
    # (checkpointed) reached the function once, record 2 with every retry. (Ignored, the batch
    # would count as a success and nothing would be retried; failed as a whole, record 1 would
    # be sent again with each retry.) Record 3 follows 2, in the same batch or the next.
    assert counts[1] == 1 and counts[2] == 3 and counts[3] >= 1, counts


def test_eventbridge_schedule_rule(client, scheduled_probe):
    """The rule was made at session start (conftest.scheduled_probe): LocalStack's scheduler
    looks at rules about once a minute, so the wait overlaps the other tests."""
    markers, rule, rule_arn = scheduled_probe

    key = wait_for(
        f"a scheduled run of rule {rule}",
        lambda: list_keys(client, markers, f"events/{rule}/"),
        timeout=80,
        interval=1,
    )[0]

    marker = read_json(client, markers, key)
    assert marker["rule"] == rule
    assert marker["detail_type"] == "Scheduled Event"
    assert marker["source"] == "aws.events"
    assert rule_arn == f"arn:aws:events:{REGION}:{ACCOUNT}:rule/{rule}"
