"""The host executor: direct invokes, errors, timeout, warm reuse, logs, unsupported runtimes."""

import base64
import json

from helpers import ENDPOINT, invoke, read_json, unique, wait_for


def test_sync_invoke_runs_the_bootstrap_with_lambda_environment(client, probe_function):
    fn = probe_function()
    response, out = invoke(client, fn["FunctionName"], {"hello": "world"}, LogType="Tail")

    assert response["StatusCode"] == 200
    assert "FunctionError" not in response, out
    assert out["probe"] == "ok"
    assert out["event"] == {"hello": "world"}
    assert out["request_id"] == response["ResponseMetadata"]["RequestId"]
    assert out["function_arn"] == fn["FunctionArn"]
    env = out["env"]
    assert env["AWS_ENDPOINT_URL"] == ENDPOINT.replace("localhost", "127.0.0.1")
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == fn["FunctionName"]
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "128"
    assert env["AWS_REGION"] == "us-east-1"
    assert env["_HANDLER"] == "bootstrap"
    assert env["LAMBDA_TASK_ROOT"]
    tail = base64.b64decode(response["LogResult"]).decode()
    assert "START RequestId:" in tail and "REPORT RequestId:" in tail, tail
    assert "probe invoked" in tail, tail


def test_async_invoke_is_proven_by_its_side_effect(client, probe_function, bucket):
    markers = bucket("markers")
    fn = probe_function(marker_bucket=markers)
    key = f"async/{unique('event')}.json"

    response = client("lambda").invoke(
        FunctionName=fn["FunctionName"],
        InvocationType="Event",
        Payload=json.dumps({"marker": key}).encode(),
    )

    assert response["StatusCode"] == 202
    marker = wait_for(f"marker s3://{markers}/{key}", lambda: read_json(client, markers, key))
    assert marker["event"]["marker"] == key
    assert marker["env"]["AWS_LAMBDA_FUNCTION_NAME"] == fn["FunctionName"]


def test_warm_invokes_reuse_the_same_process(client, probe_function):
    fn = probe_function()
    _, first = invoke(client, fn["FunctionName"], {})
    _, second = invoke(client, fn["FunctionName"], {})

    assert second["pid"] == first["pid"]
    assert (first["invocation"], second["invocation"]) == (1, 2)


def test_function_error_is_reported_as_unhandled(client, probe_function):
    fn = probe_function()
    response, out = invoke(client, fn["FunctionName"], {"fail": "probe asked to fail"})

    assert response["FunctionError"] == "Unhandled"
    assert out["errorMessage"] == "probe asked to fail"
    # The environment stays usable after a handled error.
    response, out = invoke(client, fn["FunctionName"], {})
    assert "FunctionError" not in response and out["invocation"] == 2


def test_timeout_is_enforced_and_the_next_invoke_starts_fresh(client, probe_function):
    fn = probe_function(timeout=1)
    _, before = invoke(client, fn["FunctionName"], {})

    response, out = invoke(client, fn["FunctionName"], {"sleep_ms": 5000})

    assert response["FunctionError"] == "Unhandled"
    assert "Task timed out after 1.00 seconds" in out["errorMessage"], out
    _, after = invoke(client, fn["FunctionName"], {})
    assert after["pid"] != before["pid"]
    assert after["invocation"] == 1


def test_crashing_bootstrap_fails_the_invoke_and_is_restarted(client, probe_function):
    fn = probe_function()
    _, before = invoke(client, fn["FunctionName"], {})

    response, out = invoke(client, fn["FunctionName"], {"exit": 3})

    assert response["FunctionError"] == "Unhandled"
    assert out["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in out["errorMessage"]
    _, after = invoke(client, fn["FunctionName"], {})
    assert after["pid"] != before["pid"] and after["invocation"] == 1


def test_function_output_lands_in_cloudwatch_logs(client, probe_function):
    fn = probe_function()
    response, _ = invoke(client, fn["FunctionName"], {"log": "me"})
    group = f"/aws/lambda/{fn['FunctionName']}"

    def find():
        events = client("logs").filter_log_events(logGroupName=group)["events"]
        messages = "".join(e["message"] for e in events)
        return "probe invoked" in messages and "REPORT RequestId" in messages

    wait_for(f"the probe's log lines in {group}", find)


def test_unsupported_runtime_gives_a_clear_error(client, probe_function):
    fn = probe_function(runtime="python3.12", wait_active=False)
    lam = client("lambda")

    conf = wait_for(
        "the python function to settle",
        lambda: (c := lam.get_function_configuration(FunctionName=fn["FunctionName"]))["State"]
        != "Pending"
        and c,
    )

    assert conf["State"] == "Failed"
    assert "not supported by the host executor" in conf["StateReason"], conf["StateReason"]
