"""End-to-end fixtures: infra/template.yaml deployed into LocalStack once per session.

The stack is the real template (tests/localstack/stack.py packages the cargo-lambda zips
and deploys it), with a fresh stage name so runs never share resources. The functions run
as host processes through the LocalStack plugin. Before deploying, a small HTTP API is
started here and its settings put in SSM, because the ingester's schedule (rate(1 minute))
starts firing as soon as the stack exists.
"""

from __future__ import annotations

import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from fake_api import API_KEY, Api

# stack.py (the deployer) and the harness suite's helpers.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "localstack"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "localstack" / "tests"))
import stack as stack_tool  # noqa: E402

# The session stack's GlueRouteThresholdBytes: far above every file the other tests upload
# (the sample is 2 KB), so only test_glue_workflow's big file is routed to the Glue engine.
ROUTE_BYTES = 1 << 20

@pytest.fixture(scope="session")
def api() -> Iterator[tuple[str, type[Api]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", Api
    server.shutdown()


@pytest.fixture(scope="session")
def client():
    return stack_tool.client


@pytest.fixture(scope="session")
def stack(api, client) -> Iterator[dict[str, str]]:
    stage = "e" + uuid.uuid4().hex[:7]
    name = f"etl-e2e-{stage}"
    param_prefix = f"/etl-e2e/{stage}/api"
    ssm = client("ssm")
    ssm.put_parameter(Name=f"{param_prefix}/base_url", Value=api[0], Type="String")
    ssm.put_parameter(Name=f"{param_prefix}/api_key", Value=API_KEY, Type="SecureString")
    ssm.put_parameter(Name=f"{param_prefix}/endpoints", Value='["customers"]', Type="String")
    outputs = stack_tool.deploy(
        name,
        {
            "Stage": stage,
            "ApiParamPrefix": param_prefix,
            "ScheduleExpression": "rate(1 minute)",
            # Far away: the tests start the workflow themselves.
            "WorkflowScheduleExpression": "rate(7 days)",
            "GlueRouteThresholdBytes": str(ROUTE_BYTES),
        },
    )
    outputs["StackName"] = name
    outputs["Stage"] = stage
    yield outputs
    stack_tool.delete(name)
    for leaf in ("base_url", "api_key", "endpoints"):
        ssm.delete_parameter(Name=f"{param_prefix}/{leaf}")


@pytest.fixture(scope="session")
def topics(stack, client) -> dict[str, str]:
    """An SQS queue subscribed to each topic (raw delivery); returns topic -> queue URL."""
    sqs, sns = client("sqs"), client("sns")
    queues = {}
    for topic in ("NotificationTopicArn", "AlertTopicArn"):
        url = sqs.create_queue(QueueName=f"{stack['Stage']}-{topic}")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        sns.subscribe(TopicArn=stack[topic], Protocol="sqs", Endpoint=arn,
                      Attributes={"RawMessageDelivery": "true"})
        queues[topic] = url
    return queues
