"""Glue through LocalStack's gateway (our glue:default provider: moto stores, job runs run)."""

import io
import json
import zipfile

import pytest

from helpers import ACCOUNT, REGION, list_keys, read_json, run_state_machine, unique, wait_for

GLUE_ROLE = f"arn:aws:iam::{ACCOUNT}:role/probe-glue"
TERMINAL_JOB_STATES = {"SUCCEEDED", "FAILED", "STOPPED", "TIMEOUT", "ERROR"}


def columns(*pairs):
    return [{"Name": name, "Type": type_} for name, type_ in pairs]


def test_catalog_database_table_partitions_round_trip(client):
    glue = client("glue")
    db = unique("probe_db").replace("-", "_")
    glue.create_database(DatabaseInput={"Name": db, "Description": "probe"})
    try:
        location = f"s3://processed/{db}/customers/"
        glue.create_table(
            DatabaseName=db,
            TableInput={
                "Name": "customers",
                "TableType": "EXTERNAL_TABLE",
                "Parameters": {"classification": "parquet"},
                "PartitionKeys": columns(("country", "string"), ("customer_segment", "string")),
                "StorageDescriptor": {
                    "Columns": columns(("customer_id", "bigint"), ("email", "string")),
                    "Location": location,
                    "InputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat",
                    "OutputFormat": "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat",
                    "SerdeInfo": {
                        "SerializationLibrary": "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
                    },
                },
            },
        )
        table = glue.get_table(DatabaseName=db, Name="customers")["Table"]
        assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]] == ["customer_id", "email"]
        assert [k["Name"] for k in table["PartitionKeys"]] == ["country", "customer_segment"]

        values = [["US", "High"], ["DE", "Low"]]
        result = glue.batch_create_partition(
            DatabaseName=db,
            TableName="customers",
            PartitionInputList=[
                {
                    "Values": v,
                    "StorageDescriptor": {
                        "Columns": table["StorageDescriptor"]["Columns"],
                        "Location": f"{location}country={v[0]}/customer_segment={v[1]}/",
                    },
                }
                for v in values
            ],
        )
        assert result.get("Errors", []) == []
        partitions = glue.get_partitions(DatabaseName=db, TableName="customers")["Partitions"]
        assert sorted(p["Values"] for p in partitions) == sorted(values)
        one = glue.get_partition(
            DatabaseName=db, TableName="customers", PartitionValues=["US", "High"]
        )["Partition"]
        assert one["StorageDescriptor"]["Location"].endswith("country=US/customer_segment=High/")

        # Schema evolution as s3-processor does it: append a column with UpdateTable.
        evolved = columns(("customer_id", "bigint"), ("email", "string"), ("amount", "double"))
        glue.update_table(
            DatabaseName=db,
            TableInput={
                "Name": "customers",
                "PartitionKeys": table["PartitionKeys"],
                "StorageDescriptor": {**table["StorageDescriptor"], "Columns": evolved},
            },
        )
        table = glue.get_table(DatabaseName=db, Name="customers")["Table"]
        assert [c["Name"] for c in table["StorageDescriptor"]["Columns"]][-1] == "amount"
    finally:
        glue.delete_database(Name=db)


# --- Job runs: the provider runs the job's script as a host process --------------------------

# Each script below is the whole job: plain Python with boto3 (Glue's Python has it), run by
# the provider as `<python> <script> --JOB_NAME <job> --JOB_RUN_ID <id> --key value ...`.

# Writes what it received to s3://<--out>/argv.json, using modules from both extra-py-files.
ARGV_SCRIPT = """
import json, os, sys
import boto3
import zipped_helper, plain_helper
out = sys.argv[sys.argv.index("--out") + 1]
body = {
    "argv": sys.argv[1:],
    "modules": [zipped_helper.NAME, plain_helper.NAME],
    "region": os.environ["AWS_REGION"],
}
boto3.client("s3").put_object(Bucket=out, Key="argv.json", Body=json.dumps(body))
print("wrote argv.json")
"""

FAILING_SCRIPT = """
import sys
print("reading input", file=sys.stderr)
def check(n):
    raise ValueError(f"boom: bad record {n}")
check(7)
"""

# Waits for s3://<--out>/go (so a test can see it RUNNING), then writes done.json.
WAITING_SCRIPT = """
import sys, time
import boto3
out = sys.argv[sys.argv.index("--out") + 1]
s3 = boto3.client("s3")
while not s3.list_objects_v2(Bucket=out, Prefix="go").get("KeyCount"):
    time.sleep(0.2)
s3.put_object(Bucket=out, Key="done.json", Body=b"{}")
"""

# Sleeps ~2 s, then writes done-<--tag>.json: a .sync task must wait for it.
SLOW_SCRIPT = """
import sys, time
import boto3
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
time.sleep(2)
boto3.client("s3").put_object(Bucket=args["--out"], Key=f"done-{args['--tag']}.json", Body=b"{}")
"""

# The pinned local pyspark (ETL_GLUE_PYTHON is the Spark venv's python): a tiny aggregation.
SPARK_SCRIPT = """
import json, sys
import boto3
from pyspark.sql import SparkSession, functions as F
out = sys.argv[sys.argv.index("--out") + 1]
spark = SparkSession.builder.master("local[1]").appName(sys.argv[2]).getOrCreate()
df = spark.createDataFrame([("a", 1), ("b", 2), ("a", 3)], ["key", "n"])
totals = {r["key"]: r["total"] for r in df.groupBy("key").agg(F.sum("n").alias("total")).collect()}
body = {"totals": totals, "spark": spark.version}
spark.stop()
boto3.client("s3").put_object(Bucket=out, Key="spark.json", Body=json.dumps(body))
"""


@pytest.fixture
def glue_job(client, bucket):
    """glue_job(script, scripts=None, **create_job_kwargs) uploads the script (None: nothing)
    to the bucket `scripts` (default: a new one), creates a job running it and returns (job
    name, bucket); jobs are deleted afterwards."""
    glue, s3 = client("glue"), client("s3")
    made: list[str] = []

    def make(script: str | None, scripts: str | None = None, **kwargs) -> tuple[str, str]:
        name, scripts = unique("probe-job"), scripts or bucket("scripts")
        location = f"s3://{scripts}/jobs/{name}.py"
        if script is not None:
            s3.put_object(Bucket=scripts, Key=f"jobs/{name}.py", Body=script.encode())
        glue.create_job(
            Name=name,
            Role=GLUE_ROLE,
            Command={"Name": "glueetl", "ScriptLocation": location, "PythonVersion": "3"},
            GlueVersion="5.0",
            **kwargs,
        )
        made.append(name)
        return name, scripts

    yield make
    for name in made:
        glue.delete_job(JobName=name)


def finished_run(glue, job: str, run_id: str, timeout: float = 60) -> dict:
    return wait_for(
        f"job run {run_id} to finish",
        lambda: (r := glue.get_job_run(JobName=job, RunId=run_id)["JobRun"])["JobRunState"]
        in TERMINAL_JOB_STATES
        and r,
        timeout=timeout,
    )


def test_job_run_executes_the_script_with_glue_arguments_and_extra_py_files(
    client, glue_job, bucket
):
    glue, s3 = client("glue"), client("s3")
    out, scripts = bucket("out"), bucket("scripts")
    # Both forms of --extra-py-files: a zip (importable as is) and a plain .py.
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("zipped_helper.py", "NAME = 'from the zip'\n")
    s3.put_object(Bucket=scripts, Key="lib/helpers.zip", Body=zipped.getvalue())
    s3.put_object(Bucket=scripts, Key="lib/plain_helper.py", Body=b"NAME = 'from the .py'\n")
    extra = f"s3://{scripts}/lib/helpers.zip,s3://{scripts}/lib/plain_helper.py"
    job, _ = glue_job(
        ARGV_SCRIPT,
        scripts,
        DefaultArguments={"--extra-py-files": extra, "--out": out, "--mode": "default"},
    )

    run_id = glue.start_job_run(
        JobName=job,
        Arguments={"--mode": "from the run", "--only_run": ""},
        NumberOfWorkers=4,
        WorkerType="G.1X",
    )["JobRunId"]
    run = finished_run(glue, job, run_id)

    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    assert "ErrorMessage" not in run
    assert (run["NumberOfWorkers"], run["WorkerType"]) == (4, "G.1X")
    assert run["CompletedOn"] >= run["StartedOn"] and run["ExecutionTime"] >= 0
    assert run_id in [r["Id"] for r in glue.get_job_runs(JobName=job)["JobRuns"]]
    written = read_json(client, out, "argv.json")
    # As Glue passes them: JOB_NAME and JOB_RUN_ID first, then the job's DefaultArguments
    # merged with the run's Arguments (the run's value wins), keys with their -- prefix.
    assert written["argv"] == [
        "--JOB_NAME", job,
        "--JOB_RUN_ID", run_id,
        "--extra-py-files", extra,
        "--out", out,
        "--mode", "from the run",
        "--only_run", "",
    ]  # fmt: skip
    assert written["modules"] == ["from the zip", "from the .py"]
    assert written["region"] == REGION


def test_job_run_state_follows_the_process_and_max_concurrent_runs_counts_it(
    client, glue_job, bucket
):
    glue, s3 = client("glue"), client("s3")
    out = bucket("out")
    job, _ = glue_job(
        WAITING_SCRIPT,
        DefaultArguments={"--out": out},
        ExecutionProperty={"MaxConcurrentRuns": 1},
    )
    run_id = glue.start_job_run(JobName=job)["JobRunId"]
    wait_for(
        "the run to be RUNNING",
        lambda: glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]["JobRunState"] == "RUNNING",
    )
    # Reads do not move it on (moto's would): it runs until the script ends.
    for _ in range(3):
        run = glue.get_job_run(JobName=job, RunId=run_id)["JobRun"]
        assert run["JobRunState"] == "RUNNING" and "CompletedOn" not in run
    with pytest.raises(glue.exceptions.ConcurrentRunsExceededException):
        glue.start_job_run(JobName=job)

    s3.put_object(Bucket=out, Key="go", Body=b"")
    assert finished_run(glue, job, run_id)["JobRunState"] == "SUCCEEDED"
    assert list_keys(client, out, "done") == ["done.json"]

    # The slot is free again; a run stopped by BatchStopJobRun ends STOPPED.
    s3.delete_object(Bucket=out, Key="go")
    second = glue.start_job_run(JobName=job)["JobRunId"]
    wait_for(
        "the second run to be RUNNING",
        lambda: glue.get_job_run(JobName=job, RunId=second)["JobRun"]["JobRunState"] == "RUNNING",
    )
    stop = glue.batch_stop_job_run(JobName=job, JobRunIds=[second, "jr_unknown"])
    assert stop["SuccessfulSubmissions"] == [{"JobName": job, "JobRunId": second}]
    assert [e["JobRunId"] for e in stop["Errors"]] == ["jr_unknown"]
    assert finished_run(glue, job, second)["JobRunState"] == "STOPPED"


def test_failed_script_fails_the_run_with_its_error(client, glue_job):
    glue = client("glue")
    job, _ = glue_job(FAILING_SCRIPT)
    run = finished_run(glue, job, glue.start_job_run(JobName=job)["JobRunId"])
    assert run["JobRunState"] == "FAILED"
    assert run["ErrorMessage"] == "ValueError: boom: bad record 7"
    assert "CompletedOn" in run

    # A job whose script is not in S3 fails its runs instead of pretending to run.
    missing, scripts = glue_job(None)
    run = finished_run(glue, missing, glue.start_job_run(JobName=missing)["JobRunId"])
    assert run["JobRunState"] == "FAILED"
    location = f"s3://{scripts}/jobs/{missing}.py"
    assert run["ErrorMessage"] == f"script not found: {location} (no such object)"


def test_state_machine_glue_start_job_run_sync_waits_for_the_process(client, glue_job, bucket):
    glue = client("glue")
    out = bucket("out")
    job, _ = glue_job(SLOW_SCRIPT, DefaultArguments={"--out": out})
    failing, _ = glue_job(FAILING_SCRIPT)
    definition = {
        "StartAt": "RunJob",
        "States": {
            "RunJob": {
                "Type": "Task",
                "Resource": "arn:aws:states:::glue:startJobRun.sync",
                "Parameters": {"JobName.$": "$.job", "Arguments": {"--tag.$": "$.tag"}},
                "End": True,
            }
        },
    }

    execution = run_state_machine(client, definition, {"job": job, "tag": "sync"}, timeout=120)
    assert execution["status"] == "SUCCEEDED", execution
    output = json.loads(execution["output"])
    assert (output["JobName"], output["JobRunState"]) == (job, "SUCCEEDED")
    # The task ended only after the script had written its object (it sleeps 2 s first).
    assert list_keys(client, out) == ["done-sync.json"]
    assert (execution["stopDate"] - execution["startDate"]).total_seconds() >= 2

    execution = run_state_machine(client, definition, {"job": failing, "tag": "x"}, timeout=120)
    assert execution["status"] == "FAILED", execution
    assert execution["error"] == "States.TaskFailed"
    cause = json.loads(execution["cause"])
    assert cause["JobRunState"] == "FAILED"
    assert cause["ErrorMessage"] == "ValueError: boom: bad record 7"


def test_job_run_with_pyspark(client, glue_job, bucket):
    glue = client("glue")
    out = bucket("out")
    job, _ = glue_job(SPARK_SCRIPT, DefaultArguments={"--out": out})
    run = finished_run(glue, job, glue.start_job_run(JobName=job)["JobRunId"], timeout=180)
    assert run["JobRunState"] == "SUCCEEDED", run.get("ErrorMessage")
    written = read_json(client, out, "spark.json")
    assert written["totals"] == {"a": 4, "b": 2}
    assert written["spark"] == "3.5.4"  # the pinned pyspark, Glue 5's Spark


def test_crawler_is_created_and_started_directly_and_from_step_functions(client):
    glue = client("glue")
    db = unique("probe_db").replace("-", "_")
    crawler = unique("probe-crawler")
    glue.create_database(DatabaseInput={"Name": db})
    glue.create_crawler(
        Name=crawler,
        Role=GLUE_ROLE,
        DatabaseName=db,
        Targets={"S3Targets": [{"Path": f"s3://processed/{db}/"}]},
    )
    try:
        assert glue.get_crawler(Name=crawler)["Crawler"]["State"] == "READY"
        glue.start_crawler(Name=crawler)
        wait_for(
            "the crawler to run and return to READY",
            lambda: glue.get_crawler(Name=crawler)["Crawler"]["State"] == "READY",
        )
        # The workflow's UpdateDataCatalog step: the AWS SDK integration for StartCrawler.
        definition = {
            "StartAt": "Crawl",
            "States": {
                "Crawl": {
                    "Type": "Task",
                    "Resource": "arn:aws:states:::aws-sdk:glue:startCrawler",
                    "Parameters": {"Name": crawler},
                    "End": True,
                }
            },
        }
        execution = run_state_machine(client, definition, {})
        assert execution["status"] == "SUCCEEDED", execution
        crawls = wait_for(
            "two crawls recorded",
            lambda: len(c := glue.list_crawls(CrawlerName=crawler)["Crawls"]) == 2 and c,
        )
        assert len(crawls) == 2
    finally:
        glue.delete_crawler(Name=crawler)
        glue.delete_database(Name=db)


# --- CloudFormation: our AWS::Glue::Database / ::Crawler / ::Job resource providers ----------


def stack_outputs(cfn, stack_id: str, want: str) -> dict[str, str]:
    """Wait until the stack leaves *_IN_PROGRESS; assert it reached `want`; return its outputs."""
    stack = wait_for(
        f"stack to reach {want}",
        lambda: not (s := cfn.describe_stacks(StackName=stack_id)["Stacks"][0])[
            "StackStatus"
        ].endswith("_IN_PROGRESS")
        and s,
        timeout=60,
    )
    failed = [
        f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason')}"
        for e in cfn.describe_stack_events(StackName=stack_id)["StackEvents"]
        if e["ResourceStatus"].endswith("_FAILED")
    ]
    assert stack["StackStatus"] == want, (stack.get("StackStatusReason"), failed)
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def delete_stack(cfn, stack_id: str) -> None:
    cfn.delete_stack(StackName=stack_id)
    stack_outputs(cfn, stack_id, "DELETE_COMPLETE")


def glue_template(database: dict, crawler: dict, job: dict) -> str:
    """The three resources (the crawler and job use the database through Ref) and Ref outputs."""
    return json.dumps(
        {
            "Resources": {
                "Database": {"Type": "AWS::Glue::Database", "Properties": database},
                "Crawler": {"Type": "AWS::Glue::Crawler", "Properties": crawler},
                "Job": {"Type": "AWS::Glue::Job", "Properties": job},
            },
            "Outputs": {name: {"Value": {"Ref": name}} for name in ("Database", "Crawler", "Job")},
        }
    )


def test_cloudformation_stack_creates_and_deletes_glue_database_crawler_and_job(client):
    cfn, glue = client("cloudformation"), client("glue")
    db = unique("probe_db").replace("-", "_")
    crawler, job = unique("probe-crawler"), unique("probe-job")
    location = f"s3://processed/{db}/"
    configuration = json.dumps(
        {"Version": 1.0, "Grouping": {"TableGroupingPolicy": "CombineCompatibleSchemas"}}
    )
    targets = {"S3Targets": [{"Path": f"{location}customers/", "Exclusions": ["**/_tmp/**"]}]}
    policy = {"UpdateBehavior": "UPDATE_IN_DATABASE", "DeleteBehavior": "LOG"}
    command = {"Name": "glueetl", "ScriptLocation": "s3://scripts/etl.py", "PythonVersion": "3"}
    template = glue_template(
        database={
            "CatalogId": {"Ref": "AWS::AccountId"},
            "DatabaseInput": {
                "Name": db,
                "Description": "probe",
                "LocationUri": location,
                "Parameters": {"classification": "parquet"},
            },
        },
        crawler={
            "Name": crawler,
            "Role": GLUE_ROLE,
            "DatabaseName": {"Ref": "Database"},
            "Targets": targets,
            "SchemaChangePolicy": policy,
            "TablePrefix": "raw_",
            "Configuration": configuration,
            "Schedule": {"ScheduleExpression": "cron(0 2 * * ? *)"},
            "Description": "probe crawler",
            "Tags": {"team": "etl"},
        },
        job={
            "Name": job,
            "Role": GLUE_ROLE,
            "Command": command,
            "DefaultArguments": {"--database": {"Ref": "Database"}, "--dataset": "customers"},
            "GlueVersion": "4.0",
            "WorkerType": "G.1X",
            "NumberOfWorkers": 2,
            "Timeout": 30,
            "MaxRetries": 1,
            "ExecutionProperty": {"MaxConcurrentRuns": 3},
            "Description": "probe job",
            "Tags": {"team": "etl"},
        },
    )
    stack_id = cfn.create_stack(StackName=unique("probe-glue"), TemplateBody=template)["StackId"]
    try:
        outputs = stack_outputs(cfn, stack_id, "CREATE_COMPLETE")
        assert outputs == {"Database": db, "Crawler": crawler, "Job": job}  # Ref is the name

        database = glue.get_database(Name=db)["Database"]
        assert (database["Description"], database["LocationUri"]) == ("probe", location)
        assert database["Parameters"] == {"classification": "parquet"}
        assert database["CatalogId"] == ACCOUNT

        got = glue.get_crawler(Name=crawler)["Crawler"]
        assert (got["Role"], got["DatabaseName"], got["TablePrefix"]) == (GLUE_ROLE, db, "raw_")
        assert (got["Targets"], got["SchemaChangePolicy"]) == (targets, policy)
        assert got["Schedule"]["ScheduleExpression"] == "cron(0 2 * * ? *)"
        assert (got["Configuration"], got["Description"]) == (configuration, "probe crawler")
        arn = f"arn:aws:glue:{REGION}:{ACCOUNT}"
        assert glue.get_tags(ResourceArn=f"{arn}:crawler/{crawler}")["Tags"] == {"team": "etl"}

        got = glue.get_job(JobName=job)["Job"]
        assert (got["Role"], got["Command"], got["GlueVersion"]) == (GLUE_ROLE, command, "4.0")
        assert got["DefaultArguments"] == {"--database": db, "--dataset": "customers"}
        assert (got["WorkerType"], got["NumberOfWorkers"]) == ("G.1X", 2)
        assert (got["Timeout"], got["MaxRetries"]) == (30, 1)
        assert got["ExecutionProperty"] == {"MaxConcurrentRuns": 3}
        assert got["Description"] == "probe job"
        assert glue.get_tags(ResourceArn=f"{arn}:job/{job}")["Tags"] == {"team": "etl"}
    finally:
        delete_stack(cfn, stack_id)

    for get in (
        lambda: glue.get_database(Name=db),
        lambda: glue.get_crawler(Name=crawler),
        lambda: glue.get_job(JobName=job),
    ):
        with pytest.raises(glue.exceptions.EntityNotFoundException):
            get()


def test_cloudformation_stack_update_changes_glue_resources_and_keeps_generated_names(client):
    cfn, glue = client("cloudformation"), client("glue")
    stack = unique("probe-glue")

    def template(version: str, workers: int) -> str:
        # No names: CloudFormation generates them, as in AWS.
        return glue_template(
            database={
                "CatalogId": {"Ref": "AWS::AccountId"},
                "DatabaseInput": {"Description": version},
            },
            crawler={
                "Role": GLUE_ROLE,
                "DatabaseName": {"Ref": "Database"},
                "Targets": {"S3Targets": [{"Path": "s3://processed/customers/"}]},
                "Description": version,
            },
            job={
                "Role": GLUE_ROLE,
                "Command": {"Name": "pythonshell", "ScriptLocation": "s3://scripts/etl.py"},
                "MaxCapacity": 0.0625,
                "NumberOfWorkers": workers,
                "Description": version,
            },
        )

    stack_id = cfn.create_stack(StackName=stack, TemplateBody=template("v1", 2))["StackId"]
    try:
        names = stack_outputs(cfn, stack_id, "CREATE_COMPLETE")
        assert all(name.startswith(f"{stack}-") for name in names.values()), names
        assert names["Database"] == names["Database"].lower()
        assert glue.get_job(JobName=names["Job"])["Job"]["MaxCapacity"] == 0.0625

        cfn.update_stack(StackName=stack_id, TemplateBody=template("v2", 5))
        assert stack_outputs(cfn, stack_id, "UPDATE_COMPLETE") == names
        assert glue.get_database(Name=names["Database"])["Database"]["Description"] == "v2"
        crawler = glue.get_crawler(Name=names["Crawler"])["Crawler"]
        assert (crawler["Description"], crawler["DatabaseName"]) == ("v2", names["Database"])
        job = glue.get_job(JobName=names["Job"])["Job"]
        assert (job["Description"], job["NumberOfWorkers"]) == ("v2", 5)
    finally:
        delete_stack(cfn, stack_id)
    assert names["Job"] not in glue.list_jobs()["JobNames"]
