"""Deploy infra/template.yaml into LocalStack, as `sam deploy` would into AWS.

    stack.py deploy  [--stack-name N] [--param Key=Value ...]   create or update; print outputs
    stack.py outputs [--stack-name N]                          print the outputs as JSON
    stack.py delete  [--stack-name N]

`sam build` would compile each function on its own (`cargo lambda build --bin <name>`), which
resolves the workspace's features per function and compiles polars and the AWS SDK again for
each; here the zips come from one `--workspace` cargo-lambda build (tests/localstack/tools.sh
build-lambdas, in ETL_LAMBDA_DIR). The rest is what `sam package` does: upload every local
artifact (function zips, state machine definitions, the Glue script and its --extra-py-files
zip) to the artifacts bucket
and point the template at them; LocalStack then runs the SAM transform itself.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import boto3
import yaml
from botocore.config import Config

REPO = Path(__file__).resolve().parents[2]
TEMPLATE = REPO / "infra" / "template.yaml"
ENDPOINT = os.environ.get("ETL_LOCALSTACK_ENDPOINT", "http://127.0.0.1:4566")
REGION = "us-east-1"
# Named like SAM CLI's managed bucket: the Glue role in the template reads scripts from it.
ARTIFACTS_BUCKET = "aws-sam-cli-managed-default-samclisourcebucket-local"
# Local builds are x86_64 and run as host processes; real deployments default to arm64.
LOCAL_PARAMS = {"Architecture": "x86_64", "GluePollSeconds": "1"}


class CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short-form tags (!Ref, !Sub, ...) read as long form."""


def _tag(loader: CfnLoader, tag: str, node: yaml.Node) -> dict[str, Any]:
    name = "Ref" if tag == "Ref" else "Condition" if tag == "Condition" else f"Fn::{tag}"
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
        if tag == "GetAtt":
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)  # type: ignore[arg-type]
    return {name: value}


for _name in ("Ref", "Sub", "GetAtt", "Join", "Select", "Split", "If", "Equals", "Not", "And",
              "Or", "FindInMap", "Base64", "Cidr", "ImportValue", "GetAZs", "Condition"):
    CfnLoader.add_constructor(f"!{_name}", lambda loader, node, t=_name: _tag(loader, t, node))


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=CfnLoader)  # noqa: S506 - SafeLoader subclass


def client(service: str) -> Any:
    return boto3.client(
        service,
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, s3={"addressing_style": "path"}),
    )


def lambda_dir() -> Path:
    if os.environ.get("ETL_LAMBDA_DIR"):
        return Path(os.environ["ETL_LAMBDA_DIR"])
    target = os.environ.get("CARGO_TARGET_DIR") or str(REPO / "target")
    return Path(target) / "lambda"


def upload(s3: Any, stack: str, path: Path, name: str | None = None) -> str:
    """Uploads under a content hash (as sam package does); returns the key."""
    data = path.read_bytes()
    key = f"{stack}/{hashlib.sha256(data).hexdigest()[:16]}-{name or path.name}"
    s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=key, Body=data)
    return key


def package(template: dict[str, Any], stack: str) -> dict[str, Any]:
    s3 = client("s3")
    try:
        s3.create_bucket(Bucket=ARTIFACTS_BUCKET)
    except s3.exceptions.BucketAlreadyOwnedByYou:
        pass
    base = TEMPLATE.parent
    for logical_id, res in template["Resources"].items():
        props = res.get("Properties", {})
        if res["Type"] == "AWS::Serverless::Function":
            binary = res.get("Metadata", {}).get("BuildProperties", {}).get("Binary")
            if res.get("Metadata", {}).get("BuildMethod") != "rust-cargolambda" or not binary:
                raise SystemExit(f"{logical_id}: expected a rust-cargolambda function with a Binary")
            zip_path = lambda_dir() / binary / "bootstrap.zip"
            if not zip_path.is_file():
                raise SystemExit(
                    f"{zip_path} not found: build the functions first (tests/localstack/tools.sh build-lambdas)"
                )
            key = upload(s3, stack, zip_path, f"{binary}.zip")
            props["CodeUri"] = {"Bucket": ARTIFACTS_BUCKET, "Key": key}
            del res["Metadata"]
        elif res["Type"] == "AWS::Serverless::StateMachine" and isinstance(props.get("DefinitionUri"), str):
            key = upload(s3, stack, (base / props["DefinitionUri"]).resolve())
            props["DefinitionUri"] = {"Bucket": ARTIFACTS_BUCKET, "Key": key}
        elif res["Type"] == "AWS::Glue::Job":
            script = props["Command"]["ScriptLocation"]
            if not script.startswith("s3://"):
                key = upload(s3, stack, (base / script).resolve())
                props["Command"]["ScriptLocation"] = f"s3://{ARTIFACTS_BUCKET}/{key}"
            args = props.get("DefaultArguments", {})
            if "--extra-py-files" in args:
                args["--extra-py-files"] = _upload_local_paths(s3, stack, base, args["--extra-py-files"])
    return template


def _upload_local_paths(s3: Any, stack: str, base: Path, value: Any) -> Any:
    """--extra-py-files: each local path (a plain string, also a branch of an Fn::If, so a
    parameter giving an s3:// URI still wins) uploaded and replaced by its s3:// URI."""
    if isinstance(value, str):
        paths = [p for p in value.split(",") if p]
        if not paths or all(p.startswith("s3://") for p in paths):
            return value
        uris = []
        for p in paths:
            if p.startswith("s3://"):
                uris.append(p)
                continue
            local = (base / p).resolve()
            if not local.is_file():
                raise SystemExit(f"{local} not found: build it first (make glue-package)")
            uris.append(f"s3://{ARTIFACTS_BUCKET}/{upload(s3, stack, local)}")
        return ",".join(uris)
    if isinstance(value, dict) and "Fn::If" in value:
        cond, yes, no = value["Fn::If"]
        return {"Fn::If": [cond, _upload_local_paths(s3, stack, base, yes),
                           _upload_local_paths(s3, stack, base, no)]}
    return value


def stack_status(cfn: Any, stack: str) -> str | None:
    try:
        return cfn.describe_stacks(StackName=stack)["Stacks"][0]["StackStatus"]
    except cfn.exceptions.ClientError as e:
        if "does not exist" in str(e):
            return None
        raise


def wait(cfn: Any, stack: str, timeout: float = 600) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = stack_status(cfn, stack) or "DELETE_COMPLETE"
        if not status.endswith("_IN_PROGRESS"):
            return status
        time.sleep(1)
    raise SystemExit(f"stack {stack}: still in progress after {timeout}s")


def failure_report(cfn: Any, stack: str) -> str:
    events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    lines = [
        f"  {e['LogicalResourceId']} ({e['ResourceType']}): {e['ResourceStatus']} {e.get('ResourceStatusReason', '')}"
        for e in events
        if e["ResourceStatus"].endswith("FAILED")
    ]
    return "\n".join(lines) or "  (no failed resource events)"


def outputs(stack: str) -> dict[str, str]:
    described = client("cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}


def deploy(stack: str, params: dict[str, str]) -> dict[str, str]:
    cfn = client("cloudformation")
    # By URL, as `sam deploy` does: the packaged template is past CloudFormation's 51,200-byte
    # limit for a TemplateBody.
    s3 = client("s3")
    body = json.dumps(package(load_template(), stack)).encode()
    key = f"{stack}/{hashlib.sha256(body).hexdigest()[:16]}-template.json"
    s3.put_object(Bucket=ARTIFACTS_BUCKET, Key=key, Body=body)
    source = {"TemplateURL": f"{ENDPOINT}/{ARTIFACTS_BUCKET}/{key}"}
    parameters = [{"ParameterKey": k, "ParameterValue": v} for k, v in {**LOCAL_PARAMS, **params}.items()]
    capabilities = ["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"]
    started = time.monotonic()
    if stack_status(cfn, stack) is None:
        cfn.create_stack(StackName=stack, **source, Parameters=parameters, Capabilities=capabilities)
    else:
        try:
            cfn.update_stack(StackName=stack, **source, Parameters=parameters, Capabilities=capabilities)
        except cfn.exceptions.ClientError as e:
            if "No updates are to be performed" not in str(e):
                raise
    status = wait(cfn, stack)
    # "No updates" leaves the stack as it was: CREATE_ or UPDATE_COMPLETE.
    if status not in ("CREATE_COMPLETE", "UPDATE_COMPLETE"):
        raise SystemExit(f"stack {stack}: {status}\n{failure_report(cfn, stack)}")
    print(f"stack.py: {stack} {status} in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return outputs(stack)


def delete(stack: str) -> None:
    cfn = client("cloudformation")
    if stack_status(cfn, stack) is None:
        return
    # CloudFormation refuses to delete non-empty buckets; empty the stack's own first. Every
    # version and delete marker: in a versioned bucket (raw) a plain delete only adds a marker.
    s3 = client("s3")
    for res in cfn.describe_stack_resources(StackName=stack)["StackResources"]:
        if res["ResourceType"] == "AWS::S3::Bucket":
            bucket = res["PhysicalResourceId"]
            for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
                for obj in page.get("Versions", []) + page.get("DeleteMarkers", []):
                    s3.delete_object(Bucket=bucket, Key=obj["Key"], VersionId=obj["VersionId"])
    cfn.delete_stack(StackName=stack)
    status = wait(cfn, stack)
    if status != "DELETE_COMPLETE":
        raise SystemExit(f"stack {stack}: {status}\n{failure_report(cfn, stack)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["deploy", "outputs", "delete"])
    parser.add_argument("--stack-name", default="serverless-etl-local")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    params = dict(p.split("=", 1) for p in args.param)
    if args.command == "deploy":
        print(json.dumps(deploy(args.stack_name, params), indent=2))
    elif args.command == "outputs":
        print(json.dumps(outputs(args.stack_name), indent=2))
    else:
        delete(args.stack_name)


if __name__ == "__main__":
    main()
