"""End-to-end fixtures: infra/template.yaml deployed into LocalStack once per session.

The stack is the real template (tests/localstack/stack.py packages the cargo-lambda zips
and deploys it), with a fresh stage name so runs never share resources. The functions run
as host processes through the LocalStack plugin. Before deploying, a small HTTP API is
started here and its settings put in SSM, because the ingester's schedule (rate(1 minute))
starts firing as soon as the stack exists.
"""

from __future__ import annotations

import json
import sys
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "localstack"))
import stack as stack_tool  # noqa: E402

API_KEY = "e2e-" + uuid.uuid4().hex  # a secret: must never appear in a log
# Two pages of customer records; the second page holds a duplicate and a bad email.
API_PAGES = [
    [
        {"customer_id": 1, "name": "Ada", "email": "ada@example.com", "country": "GB",
         "purchase_amount": 640.0, "signup_date": "2024-01-05"},
        {"customer_id": 2, "name": None, "email": "bob@example.com", "country": "US",
         "purchase_amount": 120.5, "signup_date": "2024-02-11"},
    ],
    [
        {"customer_id": 3, "name": "Chen", "email": "chen@example.com", "country": "US",
         "purchase_amount": 20.0, "signup_date": "2024-03-20"},
        {"customer_id": 3, "name": "Chen", "email": "chen@example.com", "country": "US",
         "purchase_amount": 20.0, "signup_date": "2024-03-20"},
        {"customer_id": 4, "name": "Dee", "email": "dee.example.com", "country": "FR",
         "purchase_amount": 75.0, "signup_date": "2024-04-01"},
    ],
]


class _Api(BaseHTTPRequestHandler):
    requests: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        type(self).requests.append(self.path)
        if self.headers.get("Authorization") != f"Bearer {API_KEY}":
            self.send_response(401)
            self.end_headers()
            return
        page = 2 if self.path.endswith("page=2") else 1
        if not self.path.startswith("/customers"):
            self.send_response(404)
            self.end_headers()
            return
        body = json.dumps({"data": API_PAGES[page - 1],
                           "next": "/customers?page=2" if page == 1 else None}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture(scope="session")
def api() -> Iterator[tuple[str, type[_Api]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", _Api
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
