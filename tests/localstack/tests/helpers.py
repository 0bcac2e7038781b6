"""Shared helpers for the LocalStack harness tests (fixtures are in conftest.py)."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable
from typing import Any

ENDPOINT = os.environ.get("ETL_LOCALSTACK_ENDPOINT", "http://127.0.0.1:4566")
REGION = "us-east-1"
ACCOUNT = "000000000000"
LAMBDA_ROLE = f"arn:aws:iam::{ACCOUNT}:role/probe-lambda"
SFN_ROLE = f"arn:aws:iam::{ACCOUNT}:role/probe-states"

def wait_for(
    what: str, check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.2
) -> Any:
    """Poll `check` until it returns something truthy; fail naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as e:  # noqa: BLE001 - kept for the failure message
            last_error = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last error: {last_error})")


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"



def invoke(client, name: str, payload: dict, **kwargs) -> tuple[dict, Any]:
    """Synchronous invoke; returns (response, decoded payload)."""
    response = client("lambda").invoke(
        FunctionName=name, Payload=json.dumps(payload).encode(), **kwargs
    )
    return response, json.loads(response["Payload"].read() or b"null")


def read_json(client, bucket: str, key: str) -> Any:
    return json.loads(client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def list_keys(client, bucket: str, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for page in client("s3").get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def run_state_machine(client, definition: dict, payload: dict, timeout: float = 60) -> dict:
    """Create a state machine, run it once and return the finished execution."""
    sfn = client("stepfunctions")
    arn = sfn.create_state_machine(
        name=unique("probe-sm"), definition=json.dumps(definition), roleArn=SFN_ROLE
    )["stateMachineArn"]
    try:
        execution = sfn.start_execution(stateMachineArn=arn, input=json.dumps(payload))
        return wait_for(
            "the state machine execution to finish",
            lambda: (
                (d := sfn.describe_execution(executionArn=execution["executionArn"]))["status"]
                != "RUNNING"
                and d
            ),
            timeout=timeout,
        )
    finally:
        sfn.delete_state_machine(stateMachineArn=arn)
