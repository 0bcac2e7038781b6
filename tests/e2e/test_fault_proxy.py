"""The fault proxy itself, against LocalStack's S3 with boto3 (retries off, so each fault
is seen as the client sees it): the three faults look like S3's, nothing else changes,
and the choice of faults reproduces from the seed."""

from __future__ import annotations

import uuid

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from fault_proxy import FaultProxy, Plan
from helpers import ENDPOINT, REGION


def s3_via(url: str):
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"total_max_attempts": 1}, s3={"addressing_style": "path"}),
    )


def test_decisions_depend_on_seed_and_request_only():
    targets = [(f"/b/k{i}", "") for i in range(4000)]

    def decisions(seed: int, order: list) -> dict:
        plan = Plan(seed, {"s3": 0.1})
        return {t: plan.decide("s3", "GET", t[0], t[1], True)[1] for t in order}

    first = decisions(7, targets)
    # Another arrival order, the same fates.
    assert decisions(7, list(reversed(targets))) == first
    assert decisions(8, targets) != first
    failed = [k for k in first.values() if k]
    assert 0.08 < len(failed) / len(targets) < 0.12
    assert {"slowdown", "internal", "reset"} == set(failed)
    # Other services and non-GETs: as configured, and never a reset where no body streams.
    plan = Plan(7, {"s3": 1.0})
    assert plan.decide("sqs", "POST", "/", "", False)[1] is None
    assert all(plan.decide("s3", "PUT", f"/b/{i}", "", False)[1] in ("slowdown", "internal") for i in range(200))
    # A retry of the same request is a new draw: attempt numbers count up.
    assert [plan.decide("s3", "GET", "/b/x", "", True)[0] for _ in range(3)] == [1, 2, 3]
    # First attempts: every request fails once, its retries at the rate only.
    plan = Plan(7, {"s3": 0.1}, first_attempts=True)
    firsts = [plan.decide("s3", "GET", t[0], t[1], True)[1] for t in targets]
    seconds = [plan.decide("s3", "GET", t[0], t[1], True)[1] for t in targets]
    assert all(firsts)
    assert 0.08 < sum(map(bool, seconds)) / len(targets) < 0.12


def test_faults_look_like_s3_and_clean_requests_pass_unchanged():
    bucket = f"proxy-{uuid.uuid4().hex[:8]}"
    body = bytes(range(256)) * 400
    with FaultProxy(ENDPOINT, seed=1) as proxy:
        s3 = s3_via(proxy.url)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="k", Body=body)
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body
        assert s3.get_object(Bucket=bucket, Key="k", Range="bytes=10-19")["Body"].read() == body[10:20]
        assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == len(body)
        assert not proxy.faults and proxy.requests["s3"] == 5

        proxy.set_rates({"s3": 1.0})
        seen = set()
        for _ in range(40):
            try:
                s3.get_object(Bucket=bucket, Key="k")["Body"].read()
                pytest.fail("a request went through at rate 1")
            except ClientError as e:
                code = e.response["Error"]["Code"]
                status = e.response["ResponseMetadata"]["HTTPStatusCode"]
                assert (code, status) in {("SlowDown", 503), ("InternalError", 500)}
                seen.add(code)
            except Exception as e:  # noqa: BLE001 - the reset surfaces as the body read's error
                assert proxy.faults[-1].kind == "reset", e
                seen.add("reset")
        assert seen == {"SlowDown", "InternalError", "reset"}
        assert len(proxy.faults) == 40
        # The clean GET above was attempt 1 of the same request.
        assert {f.attempt for f in proxy.faults} == set(range(2, 42))
        proxy.set_rates({})
        assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == body
