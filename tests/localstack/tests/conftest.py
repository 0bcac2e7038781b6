"""Fixtures for the LocalStack harness tests.

They need only an AWS endpoint (ETL_LOCALSTACK_ENDPOINT, default http://127.0.0.1:4566), so
they run against host-mode LocalStack (tests/localstack/localstack.sh) or a stock one, and the
probe Lambda's zip (ETL_PROBE_ZIP, set by run-tests.sh). Every test makes its own uniquely
named resources and deletes what it can afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from helpers import ENDPOINT, LAMBDA_ROLE, REGION, unique, wait_for


@pytest.fixture(scope="session")
def client() -> Callable[[str], Any]:
    """client("s3") etc., pointed at LocalStack with test credentials."""
    config = Config(
        retries={"max_attempts": 2, "mode": "standard"},
        read_timeout=120,
        s3={"addressing_style": "path"},
    )
    cache: dict[str, Any] = {}

    def make(service: str) -> Any:
        if service not in cache:
            cache[service] = boto3.client(
                service,
                endpoint_url=ENDPOINT,
                region_name=REGION,
                aws_access_key_id="test",
                aws_secret_access_key="test",
                config=config,
            )
        return cache[service]

    wait_for(
        f"LocalStack at {ENDPOINT}",
        lambda: make("sts").get_caller_identity()["Account"],
        timeout=30,
    )
    return make


@pytest.fixture(scope="session")
def probe_zip() -> bytes:
    path = os.environ.get("ETL_PROBE_ZIP")
    if not path:
        target = Path(os.environ.get("CARGO_TARGET_DIR", Path(__file__).parents[3] / "target"))
        path = str(target / "lambda" / "probe-lambda" / "bootstrap.zip")
    if not Path(path).is_file():
        raise FileNotFoundError(
            f"probe Lambda zip not found at {path}: build it with tests/localstack/run-tests.sh "
            "(or set ETL_PROBE_ZIP)"
        )
    return Path(path).read_bytes()


@pytest.fixture
def bucket(client) -> Iterator[Callable[[str], str]]:
    """bucket("prefix") creates an empty bucket; all are emptied and deleted afterwards."""
    s3 = client("s3")
    made: list[str] = []

    def make(prefix: str = "probe") -> str:
        name = unique(prefix)
        s3.create_bucket(Bucket=name)
        made.append(name)
        return name

    yield make
    for name in made:
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
            for obj in page.get("Contents", []):
                s3.delete_object(Bucket=name, Key=obj["Key"])
        s3.delete_bucket(Bucket=name)


@pytest.fixture
def probe_function(client, probe_zip) -> Iterator[Callable[..., dict]]:
    """probe_function(marker_bucket=..., timeout=...) creates the probe Lambda and waits until
    it is Active; returns its configuration. Functions are deleted afterwards."""
    lam = client("lambda")
    made: list[str] = []

    def make(
        marker_bucket: str | None = None,
        timeout: int = 30,
        runtime: str = "provided.al2023",
        wait_active: bool = True,
    ) -> dict:
        name = unique("probe")
        env = {"RUST_LOG": "info"}
        if marker_bucket:
            env["MARKER_BUCKET"] = marker_bucket
        conf = lam.create_function(
            FunctionName=name,
            Runtime=runtime,
            Handler="bootstrap",
            Role=LAMBDA_ROLE,
            Code={"ZipFile": probe_zip},
            Timeout=timeout,
            MemorySize=128,
            Architectures=["x86_64"],
            Environment={"Variables": env},
        )
        made.append(name)
        if wait_active:
            lam.get_waiter("function_active_v2").wait(
                FunctionName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
            )
        return conf

    yield make
    for name in made:
        try:
            lam.delete_function(FunctionName=name)
        except lam.exceptions.ResourceNotFoundException:
            pass
        except ClientError as e:
            # LocalStack 4.14 cannot delete a function whose creation Failed (its version
            # manager is gone); nothing of it runs, so there is nothing else to clean.
            if "Unable to find version manager" not in str(e):
                raise


@pytest.fixture(scope="session", autouse=True)
def scheduled_probe(client, probe_zip) -> Iterator[tuple[str, str, str]]:
    """A probe function with an EventBridge rate(1 minute) rule, made when the session starts.

    LocalStack evaluates schedules about once a minute, so the first run can be up to a minute
    away; making the rule first lets that wait overlap the other tests. Yields
    (marker bucket, rule name, rule ARN) for test_triggers.test_eventbridge_schedule_rule.
    """
    s3, lam, events = client("s3"), client("lambda"), client("events")
    markers, name, rule = unique("markers"), unique("probe-sched"), unique("probe-schedule")
    s3.create_bucket(Bucket=markers)
    fn = lam.create_function(
        FunctionName=name,
        Runtime="provided.al2023",
        Handler="bootstrap",
        Role=LAMBDA_ROLE,
        Code={"ZipFile": probe_zip},
        Timeout=30,
        Environment={"Variables": {"MARKER_BUCKET": markers}},
    )
    lam.get_waiter("function_active_v2").wait(
        FunctionName=name, WaiterConfig={"Delay": 0.5, "MaxAttempts": 120}
    )
    rule_arn = events.put_rule(Name=rule, ScheduleExpression="rate(1 minute)")["RuleArn"]
    lam.add_permission(
        FunctionName=name,
        StatementId="events",
        Action="lambda:InvokeFunction",
        Principal="events.amazonaws.com",
        SourceArn=rule_arn,
    )
    events.put_targets(Rule=rule, Targets=[{"Id": "probe", "Arn": fn["FunctionArn"]}])
    yield markers, rule, rule_arn
    events.remove_targets(Rule=rule, Ids=["probe"])
    events.delete_rule(Name=rule)
    lam.delete_function(FunctionName=name)
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=markers):
        for obj in page.get("Contents", []):
            s3.delete_object(Bucket=markers, Key=obj["Key"])
    s3.delete_bucket(Bucket=markers)
