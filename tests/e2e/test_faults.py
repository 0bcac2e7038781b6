"""Faults injected, not imagined: the deployed functions' S3 traffic goes through a proxy
(fault_proxy.py) that fails a share of requests (503 SlowDown, 500 InternalError, a
connection reset mid-body on GetObject). Each path runs twice, fault-free then faulted,
on inputs that differ only in names (bucket, customer id), and the two end states must be
the same once those names are mapped back: every row once, no duplicate, no orphan file,
every purchase started once.
The Kinesis and API paths make few S3 requests (a handful per run), so a 10% share may
miss them: they run a third time with every request's first attempt failing too, so each
of their call sites meets a fault and retries.

ETL_FAULT_RATE (default 0.1) is the share of S3 requests that fail; ETL_FAULT_SEED (default
random, printed) makes a failing run reproduce: a request's fate depends on the seed and
the request, not on timing.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import random
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from fault_proxy import FaultProxy
from helpers import ENDPOINT, list_keys, wait_for
import stack as stack_tool
from test_pipeline import SAMPLE, states_entered
from test_workflow_listing import function_name, new_raw_bucket, run, set_checker_env

RATE = float(os.environ.get("ETL_FAULT_RATE", "0.1"))
SEED = int(os.environ.get("ETL_FAULT_SEED") or random.SystemRandom().randrange(1 << 32))
WORKFLOW_FILES = 50
FIXTURES = Path(__file__).resolve().parents[2] / "functions" / "api-ingester" / "tests" / "fixtures"
# Columns a run stamps with its own clock.
VOLATILE = {"processed_at", "_ingested_at"}


def source_hash(bucket: str, key: str) -> str:
    """s3-processor's id hash of a source (FNV-1a 64 of "bucket/key"), as in its names."""
    h = 0xCBF29CE484222325
    for b in f"{bucket}/{key}".encode():
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return f"{h:016x}"


@pytest.fixture(scope="module")
def fault_stack(stack, client) -> Iterator[dict[str, str]]:
    """A stack of this module's own, since the proxy needs the functions' environment
    changed (LocalStack's asynchronous invokes of an updated function stopped reaching
    their on-failure destination, which broke a later test of the shared stack). Same
    API settings as the session's stack; its schedule is far away (the test invokes the
    ingester with the scheduled event itself)."""
    stage = "f" + uuid.uuid4().hex[:7]
    name = f"etl-e2e-{stage}"
    outputs = stack_tool.deploy(
        name,
        {
            "Stage": stage,
            "ApiParamPrefix": f"/etl-e2e/{stack['Stage']}/api",
            "ScheduleExpression": "rate(7 days)",
            "WorkflowScheduleExpression": "rate(7 days)",
        },
    )
    outputs["StackName"] = name
    outputs["Stage"] = stage
    yield outputs
    stack_tool.delete(name)


@pytest.fixture(scope="module")
def proxy(fault_stack, client) -> Iterator[FaultProxy]:
    """The proxy, with every function's S3 endpoint pointed at it (rate 0 until a test
    turns faults on)."""
    stack = fault_stack
    print(f"\nfault proxy: seed {SEED} (ETL_FAULT_SEED={SEED} reproduces), S3 failure rate {RATE}")
    names = [
        function_name(client, stack, "S3ProcessorFunction"),
        stack["SourceDataCheckerFunctionName"],
        stack["KinesisConsumerFunctionName"],
        stack["ApiIngesterFunctionName"],
    ]
    with FaultProxy(ENDPOINT, SEED) as p:
        for n in names:
            set_checker_env(client, n, {"AWS_ENDPOINT_URL_S3": p.url})
        yield p
        print(f"fault proxy: {dict(p.requests)} requests, faults injected {p.summary()}")


class Phase:
    """A run's fault setting: `clean` (none), `faulted` (RATE of S3 requests fail) or
    `first-attempts` (RATE, and also the first attempt of every S3 request, so every call
    site of every function meets a fault). Records the faults injected and the requests
    the proxy carried per bucket while it was on."""

    def __init__(self, proxy: FaultProxy, label: str):
        self.proxy, self.label = proxy, label

    def __enter__(self) -> Phase:
        self.start_faults, self.start_buckets = len(self.proxy.faults), Counter(self.proxy.by_bucket)
        if self.label != "clean":
            self.proxy.set_rates({"s3": RATE}, first_attempts=self.label == "first-attempts")
        return self

    def __exit__(self, *exc) -> None:
        self.proxy.set_rates({})
        self.faults = self.proxy.faults[self.start_faults:]
        self.buckets = Counter(self.proxy.by_bucket) - self.start_buckets
        print(f"{self.label}: {len(self.faults)} S3 faults injected {dict(Counter(f.kind for f in self.faults))}")


def normalise(value: Any, names: dict[str, str]) -> Any:
    """`value` with run-specific names replaced by placeholders."""
    if isinstance(value, str):
        for name, placeholder in names.items():
            value = value.replace(name, placeholder)
        return value
    if isinstance(value, dict):
        return {k: normalise(v, names) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, names) for v in value]
    return value


def parquet_rows(client, bucket: str, key: str) -> list[dict[str, Any]]:
    body = client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in pq.read_table(io.BytesIO(body)).to_pylist()]


def index(client, stack: dict[str, str], dataset: str) -> dict[str, list[str]]:
    """The dataset's manifest, data and quarantine keys, listed once for many sources."""
    return {
        "manifests": list_keys(client, stack["ProcessedBucketName"], f"manifests/{dataset}/"),
        "data": list_keys(client, stack["ProcessedBucketName"], f"processed/{dataset}/"),
        "quarantine": list_keys(client, stack["QuarantineBucketName"], f"quarantine/{dataset}/"),
    }


def published(client, stack: dict[str, str], keys: dict[str, list[str]], raw_bucket: str, key: str) -> dict[str, Any]:
    """What s3-processor left for one source: its manifest's counts, its rows per partition,
    its quarantined rows, and every object (data, quarantine) bearing its id: those the
    manifest does not list are orphans, those it lists but are absent are missing."""
    processed, quarantine = stack["ProcessedBucketName"], stack["QuarantineBucketName"]
    s3 = client("s3")
    h = source_hash(raw_bucket, key)
    [manifest_key] = [k for k in keys["manifests"] if k.endswith(f"-{h}.json")]
    manifest = json.loads(s3.get_object(Bucket=processed, Key=manifest_key)["Body"].read())
    listed = {o["path"] for o in manifest["outputs"]}
    rows: dict[str, Counter] = {}
    for out in manifest["outputs"]:
        out_key = out["path"].removeprefix(f"s3://{processed}/")
        partition = "/".join(f"{k}={v}" for k, v in sorted(out["partition"].items()))
        rows.setdefault(partition, Counter()).update(
            json.dumps(r, sort_keys=True, default=str) for r in parquet_rows(client, processed, out_key)
        )
    rejected: Counter = Counter()
    if manifest.get("quarantine"):
        q_key = manifest["quarantine"]["path"].removeprefix(f"s3://{quarantine}/")
        listed.add(manifest["quarantine"]["path"])
        rejected.update(json.dumps(r, sort_keys=True, default=str) for r in parquet_rows(client, quarantine, q_key))
    present = {f"s3://{processed}/{k}" for k in keys["data"] if h in k}
    present |= {f"s3://{quarantine}/{k}" for k in keys["quarantine"] if h in k}
    return {
        "status": manifest["status"],
        "counts": manifest["counts"],
        "rows": rows,
        "rejected": rejected,
        "orphans": sorted(present - listed),
        "missing": sorted(listed - present),
    }


def why(client, stack: dict[str, str], done: dict) -> list:
    """A failed execution's failure events and s3-processor's logged errors, for the report."""
    events = client("stepfunctions").get_execution_history(executionArn=done["executionArn"], maxResults=1000)["events"]
    found: list = [v for e in events for k, v in e.items() if k.endswith("FailedEventDetails")]
    group = f"/aws/lambda/{function_name(client, stack, 'S3ProcessorFunction')}"
    try:
        logged = client("logs").filter_log_events(logGroupName=group, filterPattern="ERROR")["events"]
        found += [e["message"][:600] for e in logged[-5:]]
    except Exception as e:  # noqa: BLE001 - the report is best effort
        found.append(f"(no logs: {e})")
    return found


def workflow_files() -> dict[str, bytes]:
    """WORKFLOW_FILES variants of the sample: customer ids shifted per file, so rows differ."""
    header, *lines = list(csv.reader(io.StringIO(SAMPLE.read_text())))
    files = {}
    for i in range(WORKFLOW_FILES):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        for line in lines:
            row = list(line)
            if row[0].isdigit():
                row[0] = str(int(row[0]) + 10000 * (i + 1))
            writer.writerow(row)
        files[f"raw-data/customers/faults/f{i:03d}.csv"] = out.getvalue().encode()
    return files


def test_workflow_under_s3_faults_ends_as_a_fault_free_run(fault_stack, client, proxy):
    stack = fault_stack
    s3 = client("s3")
    files = workflow_files()
    results = {}
    for label in ("clean", "faulted"):
        bucket = new_raw_bucket(client, stack, label)
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]), files.items()))
        with Phase(proxy, label) as phase:
            done = run(client, stack, {"bucket": bucket, "prefix": "raw-data/customers/faults/"}, timeout=400)
        # The functions' S3 traffic (reading this bucket) crossed the proxy.
        assert phase.buckets[bucket] >= 2 * WORKFLOW_FILES, phase.buckets
        if label == "faulted":
            assert {f.kind for f in phase.faults} == {"slowdown", "internal", "reset"}, phase.faults
        if done["status"] != "SUCCEEDED":
            print(f"workflow ({label}) failed:", *why(client, stack, done), sep="\n")
        assert done["status"] == "SUCCEEDED", label
        assert "ProcessFiles" in states_entered(client, done["executionArn"])
        keys = index(client, stack, "customers")
        with ThreadPoolExecutor(8) as pool:
            results[label] = dict(zip(files, pool.map(lambda k: published(client, stack, keys, bucket, k), files)))
    for key in files:
        clean, bad = results["clean"][key], results["faulted"][key]
        for r in (clean, bad):
            assert r["status"] == "succeeded" and not r["orphans"] and not r["missing"], (key, r)
            assert sum(sum(c.values()) for c in r["rows"].values()) == r["counts"]["rows_out"], key
        assert bad["counts"] == clean["counts"], key
        assert bad["rows"] == clean["rows"], key
        assert bad["rejected"] == clean["rejected"], key


def kinesis_batch(customer: str, stamp: str) -> list[dict[str, Any]]:
    events = []
    for session in ("s1", "s2", "s3"):
        events += [
            {"event_type": "page_view", "customer_id": customer, "session_id": session, "page": f"/{n}", "timestamp": stamp}
            for n in range(4)
        ]
        events += [
            {"event_type": "purchase", "customer_id": customer, "session_id": session, "amount": a, "timestamp": stamp}
            for a in (10.25, 3.5)
        ]
    return events


def stream_outputs(client, stack: dict[str, str], customer: str, sent: list[dict]) -> dict[str, Any]:
    """The archive lines, session lines and order executions of one customer's records."""
    archive, sfn = stack["ArchiveBucketName"], client("stepfunctions")
    s3 = client("s3")
    lines = []
    for k in list_keys(client, archive, "archive/"):
        for line in gzip.decompress(s3.get_object(Bucket=archive, Key=k)["Body"].read()).splitlines():
            if customer.encode() in line:
                lines.append(json.loads(line))
    sessions = [
        json.loads(line)
        for k in list_keys(client, archive, "sessions/")
        for line in s3.get_object(Bucket=archive, Key=k)["Body"].read().splitlines()
        if customer.encode() in line
    ]
    sequence_numbers = {r["SequenceNumber"] for r in sent}
    orders = [
        e
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=stack["OrderFulfillmentStateMachineArn"])
        for e in page["executions"]
        if e["name"].rsplit("-", 1)[-1] in sequence_numbers
    ]
    return {"archive": lines, "sessions": sessions, "orders": orders}


def test_kinesis_batch_under_s3_faults_ends_as_a_fault_free_run(fault_stack, client, proxy):
    stack = fault_stack
    kinesis = client("kinesis")
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results = {}
    for label in ("clean", "faulted", "first-attempts"):
        customer = f"c-{label}-{uuid.uuid4().hex[:8]}"
        events = kinesis_batch(customer, stamp)
        purchases = sum(e["event_type"] == "purchase" for e in events)

        def complete(customer=customer, events=events, purchases=purchases):
            out = stream_outputs(client, stack, customer, sent)
            done = len({r["sequence_number"] for r in out["archive"]}) == len(events) and len(out["orders"]) == purchases
            return done and out

        with Phase(proxy, label) as phase:
            data = [json.dumps(e).encode() for e in events]
            put = kinesis.put_records(
                StreamName=stack["EventStreamName"], Records=[{"Data": d, "PartitionKey": customer} for d in data]
            )
            assert put["FailedRecordCount"] == 0
            sent = put["Records"]
            out = wait_for(f"every {label} record archived and every purchase started", complete, timeout=120, interval=1)
            # Settled: nothing more arrives (a late duplicate would show here).
            time.sleep(3)
            out = stream_outputs(client, stack, customer, sent)
        # kinesis-consumer's writes crossed the proxy (and, in the last phase, met faults).
        assert phase.buckets[stack["ArchiveBucketName"]] >= 2, phase.buckets
        if label == "first-attempts":
            assert any(f.target.startswith(f"/{stack['ArchiveBucketName']}/") for f in phase.faults), phase.faults
        results[label] = (customer, sent, out)

    normal = {}
    for label, (customer, sent, out) in results.items():
        seq = Counter(r["sequence_number"] for r in out["archive"])
        # Every record archived exactly once; every purchase started exactly once.
        assert set(seq) == {r["SequenceNumber"] for r in sent} and max(seq.values()) == 1, (label, seq)
        names = Counter(e["name"] for e in out["orders"])
        assert max(names.values()) == 1, names
        names_map = {customer: "<customer>"}
        normal[label] = {
            "archive": sorted(json.dumps(normalise(r["data"], names_map), sort_keys=True) for r in out["archive"]),
            "sessions": sorted(json.dumps(normalise(s, names_map), sort_keys=True) for s in out["sessions"]),
            "orders": len(out["orders"]),
        }
    assert normal["faulted"] == normal["clean"]
    assert normal["first-attempts"] == normal["clean"]
    for _, _, out in results.values():
        for e in out["orders"]:
            wait_for(
                f"order {e['name']} to succeed",
                lambda e=e: client("stepfunctions").describe_execution(executionArn=e["executionArn"])["status"] == "SUCCEEDED",
                timeout=60,
            )


def test_scheduled_api_ingest_under_s3_faults_ends_as_a_fault_free_run(fault_stack, client, proxy):
    stack = fault_stack
    raw = stack["RawBucketName"]
    s3, lam = client("s3"), client("lambda")
    schedule = json.loads((FIXTURES / "example-eventbridge-schedule.json").read_text())
    results = {}
    for n, label in enumerate(("clean", "faulted", "first-attempts")):
        # Each phase is its own scheduled run: the event's time names the landed object.
        event = {**schedule, "id": str(uuid.uuid4()), "time": f"2026-01-01T00:00:0{n}Z"}
        with Phase(proxy, label) as phase:
            response = lam.invoke(FunctionName=stack["ApiIngesterFunctionName"], Payload=json.dumps(event).encode())
            report = json.loads(response["Payload"].read())
            assert "FunctionError" not in response, (label, report)
            [endpoint] = report["endpoints"]
            key = endpoint["key"]
            # The landed file is processed by the S3 trigger (through the proxy too).
            h = source_hash(raw, key)
            wait_for(
                f"the {label} ingest's manifest",
                lambda: [k for k in list_keys(client, stack["ProcessedBucketName"], "manifests/api_customers/") if k.endswith(f"-{h}.json")],
                timeout=120,
                interval=1,
            )
        # The ingester's upload and the processor's reads crossed the proxy.
        assert phase.buckets[raw] >= 2, phase.buckets
        if label == "first-attempts":
            assert any(f.method in ("PUT", "POST") and f.target.startswith(f"/{raw}/") for f in phase.faults), phase.faults
        landed = [
            {k: v for k, v in json.loads(line).items() if k not in VOLATILE}
            for line in s3.get_object(Bucket=raw, Key=key)["Body"].read().splitlines()
        ]
        results[label] = (landed, published(client, stack, index(client, stack, "api_customers"), raw, key), endpoint)
    assert len({r[2]["key"] for r in results.values()}) == 3
    clean_lines, clean, clean_ep = results["clean"]
    for label in ("faulted", "first-attempts"):
        bad_lines, bad, bad_ep = results[label]
        assert sorted(map(json.dumps, bad_lines)) == sorted(map(json.dumps, clean_lines)), label
        assert (bad_ep["records"], bad_ep["pages"]) == (clean_ep["records"], clean_ep["pages"]), label
        for r in (clean, bad):
            assert r["status"] == "succeeded" and not r["orphans"] and not r["missing"], (label, r)
        assert bad["counts"] == clean["counts"], label
        assert bad["rows"] == clean["rows"], label
        assert bad["rejected"] == clean["rejected"], label
