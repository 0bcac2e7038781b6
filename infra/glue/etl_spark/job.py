"""The Glue job: runs every dataset spec's plan on exactly the S3 objects it is given and
publishes each one as s3-processor does (same output id and keys, intent record, manifest
last, quarantine, Glue table and partitions, EMF metrics, SNS quality alert), so the two
engines are interchangeable per file.

Arguments, as Glue passes them (`--key value`; Glue's own, such as --JOB_NAME, ignored):
  --items            JSON list of {"bucket", "key", "etag", "size"} (extra keys ignored)
  --items_location   s3://bucket/key of such a list (large listings), instead of --items
  --processed_bucket, --quarantine_bucket (default: processed), --output_prefix
  (processed/), --quarantine_prefix (quarantine/), --manifest_prefix (manifests/),
  --glue_database (empty: no catalog sync), --alert_topic_arn (empty: no alerts),
  --master (local runs only; Glue sets its own).

Each item goes to the spec whose source prefix is the longest prefix of its key; others
are skipped and logged. A file that fails does not stop the others; at the end the job
fails naming every failed file and its error (the Glue run's ErrorMessage).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib.resources
import json
import os
import sys
import tempfile
import time

from . import catalog, publish, stage, transform, workdir
from .ids import output_id
from .source import S3Object

DEFAULTS = {
    "output_prefix": "processed/",
    "quarantine_prefix": "quarantine/",
    "manifest_prefix": "manifests/",
    "glue_database": "",
    "alert_topic_arn": "",
    "items": "",
    "items_location": "",
    "master": "",
}


class JobFailed(Exception):
    """Some files failed; the message names each one and its error."""


def parse_args(argv: list[str]) -> dict[str, str]:
    """`--key value` (or `--key=value`) pairs; a flag without a value is ""."""
    args: dict[str, str] = {}
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("--"):
            continue
        key, eq, value = token[2:].partition("=")
        if not eq:
            if i < len(argv) and not argv[i].startswith("--"):
                value = argv[i]
                i += 1
            else:
                value = ""
        args[key] = value
    return args


def load_plans(package: str = "etl_spark") -> list[dict]:
    """The plans shipped in the package (`etl_spark/plans/<dataset>.json`), from a
    directory or from the --extra-py-files zip alike."""
    root = importlib.resources.files(package) / "plans"
    plans = []
    if root.is_dir():
        for entry in sorted(root.iterdir(), key=lambda e: e.name):
            if entry.name.endswith(".json"):
                plans.append(json.loads(entry.read_text()))
    if not plans:
        raise JobFailed(f"no plans in {package}/plans: build the package with `make glue-package`")
    return plans


def plan_for(plans: list[dict], key: str) -> dict | None:
    """The plan whose source prefix is the longest prefix of `key` (s3-processor's spec_for)."""
    matching = [p for p in plans if key.startswith(p["source"]["prefix"])]
    return max(matching, key=lambda p: len(p["source"]["prefix"]), default=None)


def read_items(args: dict[str, str], s3) -> list[dict]:
    if args["items"] and args["items_location"]:
        raise JobFailed("give --items or --items_location, not both")
    if args["items_location"]:
        bucket, key = publish.parse_uri(args["items_location"])
        text = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        where = args["items_location"]
    elif args["items"]:
        text, where = args["items"], "--items"
    else:
        raise JobFailed("no files to process: give --items or --items_location")
    try:
        items = json.loads(text)
    except ValueError as e:
        raise JobFailed(f"{where}: not JSON: {e}") from e
    if not isinstance(items, list):
        raise JobFailed(f"{where}: expected a JSON list of items")
    for i, it in enumerate(items):
        if not (isinstance(it, dict) and isinstance(it.get("bucket"), str)
                and isinstance(it.get("key"), str)):
            raise JobFailed(f"{where}: item {i} has no bucket and key: {it!r}")
    return items


def _rfc3339_secs(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def emit_metrics(m: dict) -> None:
    """One EMF line, as s3-processor's emit_metrics writes it."""
    c = m["counts"]
    values = [("RowsIn", c["rows_in"], "Count"), ("RowsOut", c["rows_out"], "Count"),
              ("Duplicates", c["duplicates"], "Count"), ("Quarantined", c["quarantined"], "Count"),
              ("QualityScore", m["quality"]["score"], "None"),
              ("DurationMs", m["duration_ms"], "Milliseconds")]
    doc = {"source": m["source"]["name"], "Dataset": m["dataset"]}
    for name, value, _ in values:
        doc[name] = float(value)
    doc["_aws"] = {
        "Timestamp": int(time.time() * 1000),
        "CloudWatchMetrics": [{"Namespace": "ServerlessEtl", "Dimensions": [["Dataset"]],
                               "Metrics": [{"Name": n, "Unit": u} for n, _, u in values]}],
    }
    print(json.dumps(doc, separators=(",", ":")), flush=True)


def sanitize_subject(subject: str) -> str | None:
    """etl_aws::sns::sanitize_subject: one line of ASCII, under SNS's 100 characters."""
    text = "".join(c if c.isascii() and c.isprintable() else " " if c.isspace() or not c.isprintable()
                   else "?" for c in subject)
    text = " ".join(text.split())
    if not text:
        return None
    return text if len(text) <= 99 else text[:96].rstrip() + "..."


def _f4(x: float) -> str:
    return f"{x:.4f}"


def alert_text(m: dict) -> tuple[str, str]:
    """Subject and message, as s3-processor's `alert` words them."""
    q, c = m["quality"], m["counts"]
    failed = [f"- {r['rule']} (actual {_f4(r['actual'])}, required {_f4(r['required'])}, "
              f"action {r['action'].capitalize()})" for r in q["rules"] if not r["passed"]]
    status = "Succeeded" if m["status"] == "succeeded" else "QualityFailed"
    minimum = "none" if q["min_score"] is None else f"{q['min_score']:.2f}"
    subject = f"ETL quality alert: {m['dataset']} score {q['score']:.2f}"
    message = (f"Dataset {m['dataset']} from {m['source']['name']}\nstatus: {status}\n"
               f"quality score {q['score']:.2f} (minimum {minimum})\n"
               f"rows in {c['rows_in']} out {c['rows_out']} duplicates {c['duplicates']} "
               f"quarantined {c['quarantined']}\nfailed rules:\n" + "\n".join(failed) + "\n")
    return subject, message


class Job:
    def __init__(self, args: dict[str, str], spark, plans: list[dict], clients: dict):
        if not args.get("processed_bucket"):
            raise JobFailed("--processed_bucket is required")
        self.args, self.spark, self.plans = args, spark, plans
        self.s3, self.glue, self.sns = clients["s3"], clients["glue"], clients["sns"]
        self.endpoint = clients.get("endpoint_url")
        self.cfg = publish.Settings(
            processed_bucket=args["processed_bucket"],
            quarantine_bucket=args.get("quarantine_bucket") or args["processed_bucket"],
            output_prefix=publish.with_slash(args["output_prefix"]),
            quarantine_prefix=publish.with_slash(args["quarantine_prefix"]),
            manifest_prefix=publish.with_slash(args["manifest_prefix"]),
        )

    def is_own_output(self, bucket: str, key: str) -> bool:
        c = self.cfg
        return (bucket == c.processed_bucket
                and (key.startswith(c.output_prefix) or key.startswith(c.manifest_prefix))) or (
            bucket == c.quarantine_bucket and key.startswith(c.quarantine_prefix))

    def process(self, item: dict) -> dict:
        """One object; returns its result (status processed, quality_failed or skipped)."""
        bucket, key = item["bucket"], item["key"]
        name = f"s3://{bucket}/{key}"
        result = {"bucket": bucket, "key": key}
        if self.is_own_output(bucket, key):
            return {**result, "status": "skipped", "reason": "own output"}
        if key.endswith("/"):
            return {**result, "status": "skipped", "reason": "folder marker"}
        plan = plan_for(self.plans, key)
        if plan is None:
            return {**result, "status": "skipped", "reason": "no dataset spec for this prefix"}
        dataset, ident = plan["dataset"], output_id(bucket, key)
        head = self.s3.head_object(Bucket=bucket, Key=key)
        etag = (head.get("ETag") or "").strip('"') or None
        version_id = head.get("VersionId")
        if version_id == "null":  # an unversioned object in a bucket that once was not
            version_id = None
        last_modified = head.get("LastModified")
        layout = publish.Layout(self.cfg, dataset, ident)
        newer = publish.newer_published(self.s3, layout, version_id, last_modified)
        if newer:
            return {**result, "status": "skipped", "reason": f"superseded: {newer} is already published"}
        src = S3Object(bucket, key, head["ContentLength"], version_id, head.get("ETag"), self.endpoint)
        transform.configure(self.spark, plan)
        with self.work(dataset, ident) as work:
            m = stage.run(self.spark, plan, src, ident, work, etag=etag)
            s = m["source"]
            # Ordered as the engine's SourceInfo; version and time only when known.
            m["source"] = {"name": s["name"], "id": s["id"], "etag": s["etag"],
                           **({"version_id": version_id} if version_id else {}),
                           **({"last_modified": _rfc3339_secs(last_modified)} if last_modified else {}),
                           "format": s["format"], "bytes": s["bytes"]}
            m = publish.publish(self.s3, m, work, layout, log=log)
        synced = None
        if m["status"] == "succeeded" and self.args["glue_database"]:
            location = f"s3://{self.cfg.processed_bucket}/{self.cfg.output_prefix}{dataset}/"
            synced = catalog.sync(self.glue, self.args["glue_database"], dataset, location, m)
        emit_metrics(m)
        if (m["quality"]["alert"] or m["status"] != "succeeded") and self.args["alert_topic_arn"]:
            subject, message = alert_text(m)
            subject = sanitize_subject(subject)
            self.sns.publish(TopicArn=self.args["alert_topic_arn"], Message=message,
                             **({"Subject": subject} if subject else {}))
        c = m["counts"]
        log(f"{name}: {dataset} {m['status']}: {c['rows_in']} in, {c['rows_out']} out, "
            f"{c['duplicates']} duplicates, {c['quarantined']} quarantined, quality "
            f"{m['quality']['score']:.2f}" + (f"; catalog {synced['action']}, "
                                               f"{synced['partitions_created']} new partitions"
                                               if synced else ""))
        return {**result, "status": "processed" if m["status"] == "succeeded" else "quality_failed",
                "dataset": dataset, "manifest_key": layout.manifest()[1], "rows_in": c["rows_in"],
                "rows_out": c["rows_out"], "quarantined": c["quarantined"],
                "quality_score": m["quality"]["score"]}

    @contextlib.contextmanager
    def work(self, dataset: str, ident: str):
        """Where Spark writes a file's outputs before they are published: a local dir when
        Spark runs in this process, else (a Glue cluster, whose executors do not share the
        driver's disk) a prefix beside the intent records, removed afterwards."""
        if self.spark.sparkContext.master.startswith("local"):
            with tempfile.TemporaryDirectory(prefix="etl-glue-") as tmp:
                yield workdir.LocalWork(tmp)
            return
        run_id = self.args.get("JOB_RUN_ID") or "run"
        work = workdir.S3Work(self.s3, self.cfg.processed_bucket,
                            f"{self.cfg.manifest_prefix}_staging/{run_id}/{dataset}/{ident}/")
        try:
            yield work
        finally:
            for rel in ("data", "q", "scratch", "quarantine.parquet"):
                work.remove(rel)

    def run(self, items: list[dict]) -> list[dict]:
        results, failures = [], []
        for item in items:
            name = f"s3://{item['bucket']}/{item['key']}"
            try:
                r = self.process(item)
            except Exception as e:  # noqa: BLE001 - one file's failure must not stop the others
                message = " ".join(str(e).split()) or type(e).__name__
                failures.append(f"{name}: {type(e).__name__}: {message}")
                log(f"{name}: FAILED: {type(e).__name__}: {message}")
                continue
            if r["status"] == "skipped":
                log(f"{name}: skipped: {r['reason']}")
            results.append(r)
        processed = sum(r["status"] != "skipped" for r in results)
        log(f"{len(items)} files: {processed} processed, {len(results) - processed} skipped, "
            f"{len(failures)} failed")
        if failures:
            raise JobFailed(f"{len(failures)} of {len(items)} files failed: " + "; ".join(failures))
        return results


def log(line: str) -> None:
    print(f"etl-glue-job: {line}", file=sys.stderr, flush=True)


def clients() -> dict:
    import boto3
    from botocore.config import Config

    # AWS_ENDPOINT_URL (LocalStack) is honoured by boto3 itself; executors get it passed
    # along with each S3Object, path-style as LocalStack's S3 serves it.
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
    retries = {"max_attempts": 5, "mode": "standard"}
    s3_config = Config(retries=retries, s3={"addressing_style": "path"} if endpoint else {})
    return {
        "s3": boto3.client("s3", endpoint_url=endpoint, config=s3_config),
        "glue": boto3.client("glue", config=Config(retries=retries)),
        "sns": boto3.client("sns", config=Config(retries=retries)),
        "endpoint_url": endpoint,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    args = {**DEFAULTS, **parse_args(sys.argv[1:] if argv is None else argv)}
    plans = load_plans()
    aws = clients()
    items = read_items(args, aws["s3"])
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(f"etl-glue-job {args.get('JOB_RUN_ID', '')}".strip())
    if args["master"]:
        builder = builder.master(args["master"]).config("spark.ui.enabled", "false")
    spark = builder.config("spark.ui.showConsoleProgress", "false").getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    log(f"run {args.get('JOB_RUN_ID') or '(local)'}: {len(items)} files, "
        f"{len(plans)} dataset plans ({', '.join(p['dataset'] for p in plans)})")
    try:
        return Job(args, spark, plans, aws).run(items)
    finally:
        spark.stop()
