"""A Distributed Map fails, as in AWS, once failed items exceed its tolerated failure threshold.

LocalStack 4.14 alone lets such a Map succeed; our plugin's startup patch
(etl_localstack/sfn_map_tolerance.py) adds the check. Each Map runs the probe Lambda over three
items, the second of which makes the probe fail.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from helpers import SFN_ROLE, unique, wait_for

THRESHOLD_ERROR = "States.ExceedToleratedFailureThreshold"
ITEMS = [{"n": 1}, {"n": 2, "fail": "item 2 fails"}, {"n": 3}]


def distributed_map(function_arn: str, **map_fields: Any) -> dict:
    """A Map state in DISTRIBUTED mode whose item task invokes the probe with the item."""
    return {
        "Type": "Map",
        "ItemsPath": "$.items",
        "ItemProcessor": {
            "ProcessorConfig": {"Mode": "DISTRIBUTED", "ExecutionType": "STANDARD"},
            "StartAt": "Probe",
            "States": {
                "Probe": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": function_arn, "Payload.$": "$"},
                    "ResultSelector": {"n.$": "$.Payload.event.n"},
                    "End": True,
                }
            },
        },
        **map_fields,
    }


def run(client, definition: dict) -> tuple[dict, list[dict], dict]:
    """Run the state machine on ITEMS; returns the finished execution, its history and the
    description of its (single) Map Run."""
    sfn = client("stepfunctions")
    arn = sfn.create_state_machine(
        name=unique("dmap"), definition=json.dumps(definition), roleArn=SFN_ROLE
    )["stateMachineArn"]
    try:
        execution_arn = sfn.start_execution(
            stateMachineArn=arn, input=json.dumps({"items": ITEMS})
        )["executionArn"]
        execution = wait_for(
            "the execution to finish",
            lambda: (d := sfn.describe_execution(executionArn=execution_arn))["status"]
            != "RUNNING"
            and d,
            timeout=90,
        )
        history = sfn.get_execution_history(executionArn=execution_arn, maxResults=1000)["events"]
        (map_run,) = sfn.list_map_runs(executionArn=execution_arn)["mapRuns"]
        return execution, history, sfn.describe_map_run(mapRunArn=map_run["mapRunArn"])
    finally:
        sfn.delete_state_machine(stateMachineArn=arn)


def event_types(history: list[dict]) -> list[str]:
    return [event["type"] for event in history]


@pytest.fixture
def probe_arn(probe_function) -> str:
    return probe_function()["FunctionArn"]


@pytest.mark.parametrize(
    "tolerance",
    [{}, {"ToleratedFailureCount": 0}, {"ToleratedFailurePercentage": 30.0}],
    ids=["default", "count-0", "percentage-30"],
)
def test_failed_item_over_the_threshold_fails_the_execution(client, probe_arn, tolerance):
    definition = {
        "StartAt": "Fan",
        "States": {"Fan": {**distributed_map(probe_arn, **tolerance), "End": True}},
    }

    execution, history, map_run = run(client, definition)

    assert execution["status"] == "FAILED", execution
    assert execution["error"] == THRESHOLD_ERROR
    assert "tolerated failure threshold was exceeded" in execution["cause"]
    types = event_types(history)
    assert "MapRunFailed" in types and "MapRunSucceeded" not in types, types
    assert types.index("MapRunFailed") < types.index("MapStateFailed") < types.index(
        "ExecutionFailed"
    ), types
    (failed,) = [e for e in history if e["type"] == "MapRunFailed"]
    assert failed["mapRunFailedEventDetails"]["error"] == THRESHOLD_ERROR
    assert map_run["status"] == "FAILED"
    assert map_run["itemCounts"]["failed"] == 1
    assert map_run["itemCounts"]["succeeded"] == 2


def test_catch_on_the_map_handles_the_threshold_error(client, probe_arn):
    definition = {
        "StartAt": "Fan",
        "States": {
            "Fan": {
                **distributed_map(probe_arn),
                "Catch": [
                    {
                        "ErrorEquals": [THRESHOLD_ERROR],
                        "ResultPath": "$.error",
                        "Next": "Recovered",
                    }
                ],
                "Next": "Unreachable",
            },
            "Unreachable": {"Type": "Fail", "Error": "NotCaught"},
            "Recovered": {"Type": "Pass", "Result": "recovered", "ResultPath": "$.outcome", "End": True},
        },
    }

    execution, history, map_run = run(client, definition)

    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert output["outcome"] == "recovered"
    assert output["items"] == ITEMS
    assert output["error"]["Error"] == THRESHOLD_ERROR
    assert "tolerated failure threshold was exceeded" in output["error"]["Cause"]
    assert "MapRunFailed" in event_types(history)
    assert map_run["status"] == "FAILED"


@pytest.mark.parametrize(
    "tolerance",
    [{"ToleratedFailureCount": 1}, {"ToleratedFailurePercentage": 34.0}],
    ids=["count-1", "percentage-34"],
)
def test_failed_item_within_the_threshold_succeeds(client, probe_arn, tolerance):
    definition = {
        "StartAt": "Fan",
        "States": {"Fan": {**distributed_map(probe_arn, **tolerance), "End": True}},
    }

    execution, history, map_run = run(client, definition)

    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert len(output) == 3
    assert output[0] == {"n": 1} and output[2] == {"n": 3}
    assert "MapRunSucceeded" in event_types(history)
    assert map_run["status"] == "SUCCEEDED"
    assert map_run["itemCounts"]["failed"] == 1
    assert map_run["itemCounts"]["succeeded"] == 2
