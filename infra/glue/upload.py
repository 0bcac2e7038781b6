"""`make deploy`'s step for the Glue job's package: `sam deploy` uploads the job script but
not its --extra-py-files, so this uploads build/glue/etl_spark.zip (content-addressed, as
SAM keys artifacts) to SAM's managed artifacts bucket under the stack name (or to
GLUE_PACKAGE_BUCKET), and prints the parameter overrides for `sam deploy`: those in
samconfig.toml plus GluePackageUri.

    python upload.py --stack serverless-etl-dev --zip ../build/glue/etl_spark.zip
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tomllib
from pathlib import Path

import boto3

HERE = Path(__file__).resolve().parent


def sam_bucket() -> str:
    cfn = boto3.client("cloudformation")
    try:
        stack = cfn.describe_stacks(StackName="aws-sam-cli-managed-default")["Stacks"][0]
    except cfn.exceptions.ClientError as e:
        raise SystemExit(
            "no SAM managed artifacts bucket yet (stack aws-sam-cli-managed-default): run "
            "`cd infra && ./tools.sh sam deploy --guided` once, or set GLUE_PACKAGE_BUCKET") from e
    return next(o["OutputValue"] for o in stack["Outputs"] if o["OutputKey"] == "SourceBucket")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stack", required=True)
    p.add_argument("--zip", required=True, type=Path)
    args = p.parse_args()
    data = args.zip.read_bytes()
    bucket = os.environ.get("GLUE_PACKAGE_BUCKET") or sam_bucket()
    key = f"{args.stack}/etl_spark-{hashlib.sha256(data).hexdigest()[:16]}.zip"
    boto3.client("s3").put_object(Bucket=bucket, Key=key, Body=data)
    print(f"upload.py: s3://{bucket}/{key}", file=sys.stderr)
    config = tomllib.loads((HERE.parent / "samconfig.toml").read_text())
    overrides = config.get("default", {}).get("deploy", {}).get("parameters", {}).get(
        "parameter_overrides", "")
    print(f"{overrides} GluePackageUri=s3://{bucket}/{key}".strip())


if __name__ == "__main__":
    main()
